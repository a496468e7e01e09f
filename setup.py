"""Build of the compiled runtime kernels.

Extensions are listed as data in EXTENSIONS; each unusual flag carries its
reason beside it.
"""

import glob
import platform

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = [
    "-O3",
    # OpenMP runs tiles in parallel inside `prange`; the GIL is released there.
    "-fopenmp",
    # No -march: the wheel must run on any CPU of its architecture. The hot
    # loops get AVX2 and AVX-512 clones through target attributes instead and
    # pick one at run time (src_cy/lgn_kernels.h).
]
LINK_ARGS = ["-fopenmp"]

EXTENSIONS = [
    # (module name, sources)
    ("lgnrt._kernels", ["src_cy/_kernels.pyx"]),
]


def make_extension(name, sources):
    return Extension(
        name,
        sources,
        # The kernels live in headers the .pyx includes; listing them makes
        # an edit to a header rebuild the extension.
        depends=sorted(glob.glob("src_cy/lgn_*.h")),
        include_dirs=[numpy.get_include(), "src_cy"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
        language="c",
    )


setup(
    packages=["lgnrt", "lgnrt.bridge"],
    package_dir={"lgnrt": "lgnrt", "lgnrt.bridge": "bridge"},
    ext_modules=cythonize(
        [make_extension(name, sources) for name, sources in EXTENSIONS],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
    zip_safe=False,
)

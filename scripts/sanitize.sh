#!/usr/bin/env bash
# Build lgnrt._kernels with AddressSanitizer and UndefinedBehaviorSanitizer
# and run the runtime's tests against that build. Exits non-zero when the
# build fails, a test fails or a sanitizer reports anything.
#
# The build happens in a temporary copy of lgnrt/ and src_cy/, so the normal
# build in the checkout is left as it is. Python itself is not instrumented,
# so the ASan runtime is preloaded into it (LD_PRELOAD). Leak detection is
# off because CPython keeps many allocations alive until exit on purpose.
#
# Usage: scripts/sanitize.sh [pytest arguments...]
# Environment: BIN (folder with python, default .venv/bin), CC (default gcc),
# KEEP_BUILD=1 keeps the temporary folder for inspection.
# NOTE: only gcc is supported. clang names its runtime
# libclang_rt.asan-<arch>.so and needs -shared-libasan, which this script
# does not handle.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BIN:-$root/.venv/bin}
python=$bin/python
compiler=${CC:-gcc}
tests=(tests/test_runtime.py tests/test_packing.py tests/test_passes.py tests/test_inputs.py
       tests/test_hostile_files.py)

if [[ ! -x $python ]]; then
    echo "sanitize: $python not found; set BIN to the folder that contains the project's python" >&2
    exit 2
fi
libasan=$("$compiler" -print-file-name=libasan.so)
if [[ ! -e $libasan ]]; then
    echo "sanitize: $compiler has no libasan.so; install the compiler's AddressSanitizer runtime" \
         "(for gcc on Debian: libasan8)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lgnrt-sanitize.XXXXXX")
if [[ ${KEEP_BUILD:-0} == 1 ]]; then
    echo "sanitize: keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

# -p keeps timestamps, so cythonize reuses a generated _kernels.c that is
# newer than the .pyx. setup.py also lists lgnrt.bridge, hence bridge/.
cp -rp "$root/lgnrt" "$root/src_cy" "$root/bridge" "$root/setup.py" "$root/pyproject.toml" "$work/"
rm -f "$work"/lgnrt/_kernels*.so

# setup.py appends its own flags (-O3 -fopenmp) after CFLAGS, so the
# sanitized build is as optimised as the normal one.
sanitize_flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
echo "sanitize: building in $work with $compiler"
(
    cd "$work"
    CC=$compiler CFLAGS="$sanitize_flags -g" LDFLAGS="$sanitize_flags" \
        "$python" setup.py --quiet build_ext --inplace >"$work/build.log" 2>&1
) || { cat "$work/build.log" >&2; echo "sanitize: build failed" >&2; exit 1; }

extension=$(ls "$work"/lgnrt/_kernels*.so)
# grep without -q reads all of ldd's output, so ldd never dies of SIGPIPE,
# which pipefail would report as a failed match.
if ! ldd "$extension" | grep libasan >/dev/null; then
    echo "sanitize: $extension is not linked against libasan; the sanitizer flags did not reach the build" >&2
    exit 1
fi

# Sanitizer reports go to files named report.<pid>, because pytest captures
# standard error and loses it when a process aborts. Subprocesses of the
# tests write there too.
reports=$work/report
export LD_PRELOAD=$libasan
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$reports
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$reports
export PYTHONPATH=$work${PYTHONPATH:+:$PYTHONPATH}

# Python puts the working folder first on sys.path, so the tests import the
# sanitized copy. Check that before trusting a clean run.
cd "$work"
imported=$("$python" -c 'import lgnrt._kernels as k; print(k.__file__)')
if [[ $imported != "$work"/* ]]; then
    echo "sanitize: the tests would import $imported, not the sanitized build in $work" >&2
    exit 1
fi

log=$work/pytest.log
status=0
# The memory test measures resident memory, which ASan's redzones and its
# quarantine of freed blocks inflate, so it runs only in the normal build.
# --deselect takes a node id relative to the root folder.
"$python" -m pytest -p no:cacheprovider --rootdir="$root" -q "${tests[@]/#/$root/}" \
    --deselect tests/test_inputs.py::test_large_batch_memory_bounded "$@" 2>&1 | tee "$log" \
    || status=$?

if compgen -G "$reports.*" >/dev/null; then
    cat "$reports".* >&2
    echo "sanitize: sanitizer reports above, in $(ls "$reports".* | wc -l) report file(s)" >&2
    exit 1
fi
if grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
    echo "sanitize: a sanitizer reported an error in the test output above" >&2
    exit 1
fi
if [[ $status != 0 ]]; then
    echo "sanitize: the tests failed under the sanitizers (status $status)" >&2
    exit "$status"
fi
echo "sanitize: no sanitizer reports in ${#tests[@]} test files"

"""onnxruntime on the exported model (lgnrt.onnx_export), both formulations.

The input is uint8 pixels ("features"), as for Model.predict; only the
"labels" output is fetched. Export and session creation happen in setup.
"""

from __future__ import annotations

from .common import SIZES, cached_network, grid, random_pixels

# The "bool" graph keeps one byte per neuron and sample, so each activation
# tensor takes width x batch bytes (512 MB for 8,000 neurons at 65,536
# samples). Combinations above this many bytes per tensor are skipped. The
# default grid stays below it: 12,000 neurons at 16,384 samples are 197 MB.
BOOL_TENSOR_LIMIT_BYTES = 256 * 1024 * 1024

# onnxruntime takes seconds per call at 65,536 samples on the larger
# networks, so the largest batch is 16,384, as large as the throughput
# targets of docs/benchmarks.md start.
BATCHES = [64, 4096, 16384]


class OnnxRuntime:
    """InferenceSession.run of the exported network per formulation, batch and threads."""

    params = [grid(list(SIZES), ["small"]), ["packed", "bool"],
              grid(BATCHES, BATCHES[:2]), [1, 2]]
    param_names = ["size", "formulation", "batch", "threads"]
    timeout = 300

    def setup(self, size, formulation, batch, threads):
        try:
            import onnxruntime
            from lgnrt.onnx_export import export_onnx
        except ImportError as error:
            raise NotImplementedError(f"ONNX benchmarks need onnx and onnxruntime: {error}") from error
        shape = SIZES[size]
        if formulation == "bool" and max(shape.widths) * batch > BOOL_TENSOR_LIMIT_BYTES:
            raise NotImplementedError("bool activations of this size exceed BOOL_TENSOR_LIMIT_BYTES")

        model = export_onnx(cached_network(size), input_dtype="uint8", formulation=formulation)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = {"features": random_pixels(batch, shape.n_features)}
        self.session.run(["labels"], self.inputs)

    def time_run(self, size, formulation, batch, threads):
        self.session.run(["labels"], self.inputs)

"""Export: searched subnets -> BN-folded, verified ONNX models (FP32 and INT8) with a measured report.

Modules: :mod:`.settings` (what an export does: :class:`~.settings.ExportSettings`, no torch import),
:mod:`.pipeline` (the pipeline: :func:`~.pipeline.export_run`, :func:`~.pipeline.export_architecture`),
:mod:`.bn_fold` (BN into conv), :mod:`.onnx_export` (export, parity, ONNX accuracy), :mod:`.quantize`
(INT8 static quantisation), :mod:`.report` (Markdown, PNG, summary.json).
"""

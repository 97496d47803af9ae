"""Export: searched subnets -> BN-folded, verified ONNX models (FP32 and INT8) with a measured report.

Modules: :mod:`.settings` (what an export does: :class:`~.settings.ExportSettings`, no torch import),
:mod:`.pipeline` (the pipeline: :func:`~.pipeline.export_run`, :func:`~.pipeline.export_architecture`),
:mod:`.subnet_training` (a picked subnet fine-tuned or retrained alone before export),
:mod:`.references` (the hand-designed networks a front has to beat), :mod:`.bn_fold` (BN into conv),
:mod:`.onnx_export` (export, parity, ONNX accuracy), :mod:`.quantize` (INT8 static quantisation),
:mod:`.report` (Markdown, PNG, summary.json).
"""

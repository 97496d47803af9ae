"""Latency: device profiles (:mod:`.device`), measurement backends (:mod:`.measure`) and the edge
agent (:mod:`.agent`, :mod:`.agent_client`).

Kept import-free on purpose: an edge board running ``hwnas agent serve`` has only numpy,
onnxruntime and PyYAML, so nothing here may pull in torch at import time.
"""

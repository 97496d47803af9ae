"""Latency: device profiles (:mod:`.device`), measurement backends (:mod:`.measure`), lookup tables
(:mod:`.table`; once-for-all's YAML tables read as one by :mod:`.ofa_table`) and the edge agent
(:mod:`.agent`, :mod:`.agent_client`).

Kept import-free on purpose: an edge board running ``hwnas agent serve`` has only numpy,
onnxruntime and PyYAML, so nothing here may pull in torch at import time.
"""

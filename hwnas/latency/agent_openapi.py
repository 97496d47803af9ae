"""The edge agent's OpenAPI 3.0 document, with every option's bounds and the agent's live limits.

Generated from the same option table the agent validates with (:mod:`hwnas.latency.agent_request`),
so the document cannot promise bounds the agent does not enforce.
"""

from __future__ import annotations

from typing import Any

from hwnas.latency.agent_request import (
    INTERLEAVED_OPTIONS, MAX_BATCH_MODELS, MAX_HEADER_BYTES, MAX_JSON_DEPTH, MEASURE_OPTIONS, OptionSpec,
)

_ERR = {"description": "error with its reason", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_BINARY = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
_NUMBER = {"type": "number"}


def _parameter(spec: OptionSpec) -> dict[str, Any]:
    return {"name": spec.name, "in": "query", "required": False, "description": spec.help, "schema": spec.schema()}


def _errors(limits: dict[str, Any]) -> dict[str, Any]:
    """The 4xx/5xx answers every measuring endpoint can give, each saying when."""
    def err(when: str) -> dict[str, Any]:
        return {**_ERR, "description": when}
    return {
        "400": err("malformed option, header, shape or model"), "401": err("missing or wrong bearer token"),
        "408": err(f"the body stalled for {limits['read_timeout_s']:g} s before Content-Length bytes arrived"),
        "411": err("no Content-Length"),
        "413": err(f"body over {limits['max_upload_mb']:g} MB, answered before the body is read"),
        "422": err(f"the model broke a limit while running: {limits['max_request_s']:g} s wall time, "
                   f"{limits['max_memory_mb']:g} MB address space, {limits['max_input_elements']:,} input "
                   "elements; it was stopped and the agent serves the next request"),
        "503": err(f"{limits['max_queue']} requests already queued for the device; retry after the "
                   "Retry-After header's seconds"),
    }


def openapi_spec(limits: dict[str, Any]) -> dict[str, Any]:
    """Hand-written OpenAPI 3.0 description of the agent's endpoints; ``limits`` as in ``/v1/info``."""
    params = [_parameter(s) for s in MEASURE_OPTIONS.values()]
    errors = _errors(limits)
    return {
        "openapi": "3.0.3",
        "info": {"title": "hwnas edge agent", "version": "1", "x-limits": limits,
                 "description": "Times ONNX models on this device with ONNX Runtime, one request at a time, "
                                "each in a worker process under the limits in x-limits."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "LatencyStats": {"type": "object", "properties": {
                    **{k: _NUMBER for k in ("median_ms", "mean_ms", "std_ms", "min_ms", "p10_ms", "p90_ms")},
                    "repeats": {"type": "integer"}, "batch_size": {"type": "integer"}}},
            },
        },
        "paths": {
            "/v1/health": {"get": {"summary": "liveness check (no auth)", "security": [],
                                   "responses": {"200": {"description": "agent is up"}}}},
            "/v1/info": {"get": {"summary": "device and runtime facts, and this agent's limits",
                                 "security": [{"bearer": []}],
                                 "responses": {"200": {"description": "facts"}, "401": errors["401"]}}},
            "/v1/measure": {"post": {
                "summary": "time an ONNX model (body: raw model bytes)", "security": [{"bearer": []}],
                "parameters": params, "requestBody": _BINARY,
                "responses": {"200": {"description": "latency statistics", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/LatencyStats"}}}}, **errors}}},
            "/v1/measure-interleaved": {"post": {
                "summary": "time many ONNX models in round-robin passes, so device drift hits all alike "
                           "(body: 4-byte big-endian header length, a JSON header "
                           f"{{models: [{{bytes, shape}}]}} of at most {MAX_HEADER_BYTES} bytes, "
                           f"{MAX_JSON_DEPTH} levels and {MAX_BATCH_MODELS} models, then the models back to back)",
                "security": [{"bearer": []}],
                "parameters": [p for p in params if p["name"] != "shape"]
                + [_parameter(s) for s in INTERLEAVED_OPTIONS.values()],
                "requestBody": _BINARY,
                "responses": {"200": {"description": "per pass, per model: milliseconds", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"rows": {
                        "type": "array", "items": {"type": "array", "items": _NUMBER}}}}}}}, **errors}}},
            "/openapi.json": {"get": {"summary": "this document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.0 document"}}}},
        },
    }

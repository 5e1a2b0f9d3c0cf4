"""A FastAPI app served by uvicorn in test_serving.py: /predict is monitored and sends
to the modelwatch server at MW_URL through a small buffer, so a stopped server makes it
drop samples; /stats and /flush expose the recorder."""

from __future__ import annotations

import os
from typing import Any, Dict

from fastapi import FastAPI

import modelwatch

recorder = modelwatch.Recorder(
    modelwatch.Client(os.environ["MW_URL"], timeout=0.5),
    interval=float(os.environ.get("MW_INTERVAL", "0.2")),
    buffer=int(os.environ.get("MW_BUFFER", "15")),
)
app = FastAPI()
app.add_middleware(modelwatch.ASGIMiddleware, routes={"/predict": ("served", "v1")}, recorder=recorder)


@app.post("/predict")
async def predict(data: Dict[str, Any]) -> Dict[str, Any]:
    return {"prediction": sum(float(v) for v in data.values()) > 1.0}


@app.get("/stats")
def stats() -> Dict[str, Any]:
    return recorder.stats()


@app.post("/flush")
def flush() -> Dict[str, Any]:
    recorder.flush()
    return recorder.stats()

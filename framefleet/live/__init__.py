"""The live runtime (issue 15): a camera stream or a video file turned, frame by frame, into a prompt-named look.

- `engine`: the shipped student on ONNX Runtime, prompts to embeddings, one stream's state (`LiveSession`);
- `run`: a whole video file through one session (`framefleet live run`);
- `server`: the WebSocket server for cameras, newest frame wins, with admission and metrics (`framefleet live serve`);
- `page/`: the browser page the server serves at `/` (camera in, look out).

Nothing heavy is imported here: `framefleet.live.server` pulls in FastAPI, `engine` ONNX Runtime.
"""

"""Live looks: a causal per-frame network that turns a camera stream into a prompt-named look (issue 15).

    from framefleet.models.live.looks import LOOKS
    from framefleet.models.live.net import LiveNet, OnnxLive, step
    out, state = step(net, state, frame, cond)     # frame [H, W, 3] uint8, cond [384] MiniLM embedding
    for out in OnnxLive("live.onnx").stream(frames, cond): ...

- `looks`: the teachers, slow per-frame OpenCV looks named by prompts (`LOOKS`);
- `net`: the student (`LiveNet`, `step`, `LiveState`), its ONNX export and ONNX Runtime runner;
- `data`: training runs from real footage with history augmentation; the trainer is training/train_live.py.

Nothing is imported here, so that `python -m framefleet.models.live.looks` (and `.net`) run cleanly.
"""

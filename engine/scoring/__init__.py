"""How a run is judged: reconstruction metrics (SSIM, PSNR, FRC), the twin-image decision,
the evaluation of a trained model, the collapse detectors and the verdict built on them.

May import: the foundation modules, engine.sim (stitching the patches it scores) and engine.runs
(the telemetry schema its detector events are written in).
"""

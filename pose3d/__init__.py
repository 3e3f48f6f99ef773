"""pose3d: turn videos of people into 3D human poses (2D keypoints + the PoseMamba lifter)."""

__version__ = "0.1.0"

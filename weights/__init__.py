"""The lifter weights pose3d ships, installed as the package ``pose3d._weights``."""

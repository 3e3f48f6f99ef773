"""pose3d from Python: lift a video (or a keypoint file), then plot the main person's
joint heights over time with matplotlib.

    python examples/python_api.py VIDEO [--out heights.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pose3d.export import write_result  # noqa: E402
from pose3d.lift import Lifter, LiftSettings, lift_video  # noqa: E402
from pose3d.skeleton import JOINT_NAMES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("--out", default="heights.png")
    args = parser.parse_args()

    lifter = Lifter(device="auto")  # load the model once; reuse it for many videos
    result = lift_video(args.video, lifter, LiftSettings(people="main"))
    write_result(result, "result.json")
    track = next(t for t in result.tracks if t.id == result.main_track)

    # joints_3d: metres, root-relative, camera axes (y down); root_height_m: pelvis above the floor
    up = track.up if track.up is not None else np.array([0.0, -1.0, 0.0])
    heights = track.joints_3d @ up + (track.root_height_m[:, None] if track.root_height_m is not None else 0)
    seconds = track.frames / result.video.fps
    for name in ("head", "left_wrist", "right_wrist", "left_foot", "right_foot"):
        plt.plot(seconds, heights[:, JOINT_NAMES.index(name)], label=name)
    plt.xlabel("time (s)")
    plt.ylabel("height above the floor (m)")
    plt.legend()
    plt.savefig(args.out, dpi=120)
    print(f"{len(track)} frames, quality {track.quality}; plot in {args.out}")


if __name__ == "__main__":
    main()

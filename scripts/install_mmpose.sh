#!/usr/bin/env bash
# Install the optional mmpose 2D backend (RTMDet + RTMPose) into the active Python environment.
#
# mmpose 1.3.2 needs mmcv 2.1.0 with its compiled ops, which has no wheels for current torch:
# it is built from source here (about 15 minutes on 2 cores). Recent torch headers need C++20,
# while mmcv's setup.py asks for C++14/17: the script patches that flag. torchvision is
# required by mmpose; installing it may replace torch with the build torchvision pins.
#
# Weights: mmpose downloads them from download.openmmlab.com on first use. Offline, pass your
# own files: pose3d lift VIDEO --backend mmpose --mmpose-pose2d CONFIG.py
#   --mmpose-pose2d-weights CKPT.pth --mmpose-det CONFIG.py --mmpose-det-weights CKPT.pth
set -euo pipefail

PYTHON=${PYTHON:-python}
MMCV_VERSION=2.1.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip install "setuptools<80" wheel ninja packaging
"$PYTHON" -m pip install torchvision "mmengine>=0.10,<0.11"

"$PYTHON" -m pip download --no-deps --no-binary :all: "mmcv==${MMCV_VERSION}" -d "$work"
tar -xzf "$work"/mmcv-${MMCV_VERSION}.tar.gz -C "$work"
src="$work/mmcv-${MMCV_VERSION}"
sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
(cd "$src" && MMCV_WITH_OPS=1 "$PYTHON" -m pip install --no-build-isolation --no-cache-dir .)

"$PYTHON" -m pip install "mmdet>=3.2,<3.3" "mmpose==1.3.2"
"$PYTHON" -c "import mmcv, mmpose, mmdet; print('mmcv', mmcv.__version__, 'mmpose', mmpose.__version__, 'mmdet', mmdet.__version__)"
echo "done: 'pose3d info' should now list the mmpose backend as ok"

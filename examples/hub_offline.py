"""Use zoo weights on a machine without network: verify, copy to a folder, load with HF_HUB_OFFLINE=1.

What a real offline setup looks like:

    # on a machine with network
    stzoo download --all            # fetch into the Hugging Face cache, check sha256, print paths
    # then either copy that cache (HF_HOME) to the offline machine, or copy the files into a folder:
    export STZOO_WEIGHTS_DIR=/data/stzoo-weights HF_HUB_OFFLINE=1

This example does the folder route without touching the network: it takes the released files that
stzoo finds locally (the small ones ship inside the package, stzoo/weights), copies them into
OUT/offline-weights, and then, with HF_HUB_OFFLINE=1 and an empty Hugging Face cache in OUT/hf-home,
loads every model from that folder, shows that a corrupted copy is refused, and shows the error for a
file that is not available offline. OUT is ``--out`` (default: a new temporary folder).

    python examples/hub_offline.py [--out DIR]
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
parser.add_argument(
    "--out",
    default=None,
    metavar="DIR",
    help="folder for what this example writes (default: a new temporary folder, printed)",
)
args = parser.parse_args()
out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="stzoo-example-"))
out.mkdir(parents=True, exist_ok=True)

# huggingface_hub reads these when it is first imported: set them before importing stzoo.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str((out / "hf-home").resolve())

import numpy as np  # noqa: E402

import stzoo  # noqa: E402
from stzoo.zoo.hub import WEIGHTS_DIR_ENV, cache_report  # noqa: E402
from stzoo.zoo.manifest import get_entry  # noqa: E402
from stzoo.zoo.resolve import locate_weights  # noqa: E402

folder = (out / "offline-weights").resolve()
folder.mkdir(exist_ok=True)

# 1. Find each released file (verifying its sha256) and copy it into the offline folder.
names = sorted({stzoo.info(n)["name"] for n in stzoo.list_models(pretrained=True)})
for name in names:
    loc = locate_weights(get_entry(name))  # raises WeightsNotAvailableError if not found locally
    shutil.copy2(loc.path, folder / loc.path.name)
    print(f"{name}: verified {loc.path.name} ({loc.source}) -> {folder.name}/")

# 2. Point stzoo at the folder (searched before everything else) and load from it, offline.
os.environ[WEIGHTS_DIR_ENV] = str(folder)
for name in names:
    p = stzoo.load(name)
    # a bright square on black, with as many channels as the model reads (T×C×H×W, floats in [0, 1])
    frames = np.zeros((p.spec.frames_in, p.spec.channels, p.spec.height, p.spec.width), dtype=np.float32)
    frames[:, :, 24:36, 24:36] = 1.0
    where = locate_weights(get_entry(name))
    print(
        f"{name}: loaded offline from {where.path.parent.name}/ ({where.source}), "
        f"forecast shape {p.predict(frames).shape}"
    )

report = cache_report()
print(
    f"offline mode: {report['offline']}; local folders searched: {len(report['local_dirs'])}; "
    f"Hugging Face cache: {report['cache_dir']}"
)

# 3. A damaged copy is refused: the sha256 check runs before anything is read.
victim = folder / stzoo.info(names[0])["weights"]["filename"]
data = bytearray(victim.read_bytes())
data[-1] ^= 0xFF
victim.write_bytes(bytes(data))
try:
    stzoo.load(names[0])
except stzoo.ChecksumError as exc:
    print(f"corrupted copy refused: {str(exc)[:100]}...")
else:
    raise SystemExit("a corrupted weights file was loaded: this should never happen")

# 4. A Hub checkpoint that is not cached cannot be fetched offline, and the error says what to do.
try:
    stzoo.load("hf-hub:stzoo/not-cached-anywhere")
except stzoo.StzooError as exc:
    print(f"not available offline ({type(exc).__name__}): {str(exc)[:100]}...")
else:
    raise SystemExit("an uncached Hub checkpoint loaded in offline mode: this should never happen")
print(f"outputs (the offline folder and the empty Hugging Face cache) are in {out}")

"""Add golden `.lic` files for the current format version and entropy method.

``python tests/golden/make_golden.py``: for each case not yet in MANIFEST.json, encode it,
decode it in this process, and record the SHA-256 of the file, its decoded symbols and its
decoded pixels; for every entry without one, store its decoded pixels (+ alpha) as a PNG
beside it. Existing entries and files are NEVER rewritten: a golden file is a promise that
files written by that version decode the same forever (see docs/format.md).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"


def digests(data: bytes, device: str = "cpu") -> dict[str, str]:
    """SHA-256 of the decoded symbols and of the decoded pixels (+alpha) of a file, as
    :func:`lcodec.conformance.digests` defines them (what ``lcodec hash`` prints)."""
    from lcodec import conformance

    got = conformance.digests(data, device)
    return {"symbols_sha256": got.symbols_sha256, "pixels_sha256": got.pixels_sha256}


# The models that get golden files of each format version, with their file-name prefixes
# (the first model's names carry none). Format 1.0: every model then shipped (float
# synthesis). Format 1.1 added the exact-integer synthesis: the models that have it, whose
# new files name it (MANIFEST records ``synthesis``; their pixels must match exactly).
# Models are named by their file stem: a name moves to newer weights (or retires), a stem
# never.
GOLDEN_MODELS = {
    "v1.0": {"lite-mse-fcf1326f70791116": "", "mse-2bd822d6caf9533f": "mse-",
             "v2-mse-316546575096956a": "v2-mse-"},
    "v1.1": {"v2-mse-316546575096956a": "v2-mse-", "v2-mse-a7e60dcedde370ad": "v2-mse-a7e60dce-",
             "v2-mse-36ad74d8f2540b33": "v2-mse-36ad74d8-",
             "v2-msssim-815bb00866fd5abd": "v2-msssim-815bb008-",
             "v2-mse-fffc224be2680914": "v2-mse-fffc224b-"},
    # Format 1.2 added EXACT_INT_V2 (8-bit operands, the file's grids): the model whose card
    # opts into it.
    "v1.2": {"v2-mse-fffc224be2680914": "v2-mse-fffc224b-"},
    # Format 1.3 added the CORRECTION section: both v2 syntheses with the encoder's choice of
    # correction at each knob, and targets above the networks' largest file (FILL_CASES).
    "v1.3": {"v2-mse-fffc224be2680914": "v2-mse-fffc224b-",
             "v2-msssim-815bb00866fd5abd": "v2-msssim-815bb008-",
             "v2-mse-21d7161b11de324e": "v2-mse-21d7161b-"},
}
FILL_SINCE = "v1.3"  # versions from this one also get FILL_CASES
FILL_CASES = {"rgb-crop-fill": "rgb-crop-high", "gray-odd-fill": "gray-odd"}  # of cases()
FILL_FACTOR = 1.25  # the target: this many times the networks' largest file


def decoded_planes(data: bytes, device: str = "cpu") -> np.ndarray:
    """Decoded pixels with alpha as a 4th plane if the file has one: (H, W, 3 or 4) uint8."""
    from lcodec import api

    dec = api.decode_full(data, device)
    if dec.alpha is None:
        return dec.pixels
    return np.concatenate([dec.pixels, dec.alpha[..., None]], axis=2)


def reference_path(file: str) -> Path:
    """The reference decoding of a golden file, stored once as a lossless PNG beside it."""
    return HERE / (Path(file).stem + ".pixels.png")


def write_reference(file: str) -> bool:
    """Record the reference pixels of a golden file unless it already has them."""
    ref = reference_path(file)
    if ref.exists():
        return False
    Image.fromarray(decoded_planes((HERE / file).read_bytes())).save(ref)
    return True


def cases() -> dict[str, tuple[Image.Image, float]]:
    crop = Image.open(DATA / "kodim23_crop.png").convert("RGB")
    odd = Image.open(DATA / "kodim05_odd.png").convert("RGB")
    rgba = odd.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(odd.size))
    return {
        "rgb-crop-low": (crop, -0.3),
        "rgb-crop-high": (crop, 0.3),
        "rgb-odd": (odd, 0.0),
        "gray-odd": (odd.convert("L"), 0.1),
        "rgba-odd": (rgba, 0.0),
    }


def _tcae_made_for(info) -> bool:
    """Whether an inclined TCAE is installed whose card names this very model (a TCAE is
    found by model name, so older weights of that name would otherwise pick it up too)."""
    from lcodec import models

    path = models.find_entropy(prefix=f"{info.name}-tcae", model_id=info.model_id)
    if path is None:
        return False
    card = path.with_suffix(".json")
    return card.exists() and info.model_id.hex() in json.loads(card.read_text()).get(
        "for_model", "")


def main() -> int:
    from lcodec import api, container, models

    manifest_path = HERE / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    have = {e["file"] for e in manifest}
    version = f"v{container.FORMAT_MAJOR}.{container.FORMAT_MINOR}"
    for model, prefix in GOLDEN_MODELS.get(version, {}).items():
        info = models.find(model)
        for method in ("static", "tcae"):
            if method == "tcae" and not _tcae_made_for(info):
                continue
            todo = {name: (image, {"knob": knob}) for name, (image, knob) in cases().items()}
            if version >= FILL_SINCE:
                for name, of in FILL_CASES.items():
                    image = cases()[of][0]
                    top = api.encode(image, knob=1.0, entropy=method, model=model,
                                     correction=False)
                    todo[name] = (image, {"size": int(FILL_FACTOR * len(top))})
            for name, (image, rate) in todo.items():
                fname = f"{version}-{prefix}{method}-{name}.lic"
                if fname in have or (HERE / fname).exists():
                    continue
                data = api.encode(image, **rate, entropy=method, model=model)
                (HERE / fname).write_bytes(data)
                synthesis = container.unpack(data).header.synthesis
                manifest.append(
                    {
                        "file": fname,
                        "bytes": len(data),
                        "entropy": method,
                        "file_sha256": hashlib.sha256(data).hexdigest(),
                        **({"correction": True} if container.SectionType.CORRECTION
                           in container.unpack(data).sections else {}),
                        **digests(data),
                        **({} if synthesis == container.Synthesis.FLOAT
                           else {"synthesis": synthesis.name}),
                    }
                )
                print(f"added {fname} ({len(data)} bytes)")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for entry in manifest:
        if write_reference(entry["file"]):
            print(f"recorded reference pixels of {entry['file']}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    raise SystemExit(main())

"""One file's work for ``lcodec encode`` and ``lcodec decode``: a picklable job (batch workers
get a copy) that reads one input, calls :mod:`lcodec.api`, writes one output and returns its
statistics, plus the line ``-v`` prints for them, and whether ``--skip-existing`` skips an
output that is already there."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lcodec.cli.files import check_output, input_file, read_input, write_output
from lcodec.errors import LcodecError
from lcodec.settings import EncodeSettings


@dataclass(frozen=True)
class EncodeJob:
    """Encode one image to a `.lic` file: the encode's settings, and the CLI's ``--force``."""

    settings: EncodeSettings
    force: bool = False
    skip_existing: bool = False
    verb: ClassVar[str] = "encode"

    def skips(self, output_path: str) -> bool:
        """With --skip-existing: whether ``output_path`` is already a valid `.lic` file (its
        header and every section CRC check out; no network is loaded). Another file there
        is an error without --force, and is overwritten with it."""
        if not self.skip_existing or output_path == "-" or not Path(output_path).is_file():
            return False
        from lcodec import container
        from lcodec.fileio import read_file

        try:
            container.read_header(read_file(output_path))
        except LcodecError as exc:
            if self.force:
                return False
            raise LcodecError(f"{output_path} exists but is not a valid .lic file ({exc}); "
                              "use --force to overwrite it") from None
        return True

    def __call__(self, input_path: str, output_path: str) -> dict:
        """Encode one file; returns its statistics. Raises LcodecError on bad input."""
        import io

        check_output(output_path, self.force)
        t0 = time.perf_counter()
        # A file is opened by path, so its compressed bytes are not held during the encode.
        stdin = input_path == "-"
        source = io.BytesIO(read_input("-")) if stdin else input_file(input_path)
        from lcodec.imageio import load_image  # numpy and PIL once there is an input

        src = load_image(source, "stdin" if stdin else input_path, self.settings.alpha,
                         self.settings.strip)
        from lcodec import api  # the networks (torch) only once the input is readable

        res = api.encode_with_stats(src, self.settings)
        seconds = time.perf_counter() - t0
        write_output(output_path, res.data, self.force)
        stats = {"input": input_path, "output": output_path, "bytes": len(res.data),
                 "bpp": round(res.bpp, 5), "knob": res.knob, "model": res.model,
                 "width": res.width, "height": res.height, "seconds": round(seconds, 3),
                 "notices": res.notices}
        if res.psnr is not None:
            exact = math.isinf(res.psnr)  # no error at all: JSON has no infinity
            stats.update(psnr=None if exact else round(res.psnr, 3), lossless=exact)
        return stats

    @staticmethod
    def line(st: dict) -> str:
        if st.get("lossless"):
            psnr = ", lossless (decodes to the input's RGB exactly)"
        else:
            psnr = f", PSNR {st['psnr']:.2f} dB" if st.get("psnr") is not None else ""
        return (f"{st['input']} -> {st['output']}: {st['bytes']} bytes, {st['bpp']:.4f} bpp"
                f"{psnr}, model {st['model']}, knob {st['knob']:+.3f}, {st['seconds']:.2f} s")


@dataclass(frozen=True)
class DecodeJob:
    """Decode one `.lic` file to an image whose format the output's extension names."""

    max_pixels: int
    device: str = "cpu"
    force: bool = False
    skip_existing: bool = False
    out_quality: int | None = None  # lossy output formats; None: DEFAULT_OUT_QUALITY
    verb: ClassVar[str] = "decode"

    def skips(self, output_path: str) -> bool:
        """With --skip-existing: whether ``output_path`` exists (any file there counts)."""
        return self.skip_existing and output_path != "-" and Path(output_path).exists()

    def __call__(self, input_path: str, output_path: str) -> dict:
        """Decode one file; returns its statistics. Raises LcodecError on bad input."""
        from lcodec import container
        from lcodec.pil import decoded_mode

        check_output(output_path, self.force)
        t0 = time.perf_counter()
        data = read_input(input_path)
        header = container.read_header(data, self.max_pixels)
        # numpy, PIL and the networks (torch) only once the file's header is good
        from lcodec import api
        from lcodec.imageio import (
            DEFAULT_OUT_QUALITY,
            check_format_holds,
            encode_image,
            image_format_for,
            is_lossy,
        )

        fmt = image_format_for(output_path)
        check_format_holds(fmt, decoded_mode(*header))

        img, notices = api.decode_with_notices(data, self.device, self.max_pixels)
        seconds = time.perf_counter() - t0
        quality = DEFAULT_OUT_QUALITY if self.out_quality is None else self.out_quality
        payload, more = encode_image(img, fmt, img.info.get("icc_profile"),
                                     img.info.get("exif"), img.info.get("xmp"), quality)
        if is_lossy(fmt, img.mode):
            more.insert(0, f"re-encoded as lossy {fmt} at quality {quality} "
                           "(--out-quality sets it)")
        write_output(output_path, payload, self.force)
        w, h = img.size
        return {"input": input_path, "output": output_path, "width": w, "height": h,
                "mode": img.mode, "bytes": len(data), "bpp": round(len(data) * 8 / (w * h), 5),
                "seconds": round(seconds, 3),
                "notices": [f"{output_path}: {n}" for n in notices + more]}

    @staticmethod
    def line(st: dict) -> str:
        return (f"{st['input']} -> {st['output']}: {st['width']}×{st['height']} {st['mode']}, "
                f"{st['bpp']:.4f} bpp, {st['seconds']:.2f} s")


Job = EncodeJob | DecodeJob

"""Images to `.lic` bytes and back, with a loaded model (STATIC_CONTEXT_V1 entropy method).

Encoding runs the analysis network once; :class:`Analysis` then quantizes and entropy-codes
at any rate knob cheaply, which is what rate control searches over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lcodec import container
from lcodec.color import pad_to_multiple, rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.container import ColourMode, EntropyMethod, Header, LicFile, SectionType
from lcodec.entropy import static_context as sc
from lcodec.errors import LicError
from lcodec.models import LoadedModel
from lcodec.nets.cwic import Encoded
from lcodec.quant import code_mask

KNOB_MIN, KNOB_MAX = -1.0, 1.0  # importance-map offsets; beyond these nothing changes


def code_shape(width: int, height: int, stride: int) -> tuple[int, int]:
    return math.ceil(height / stride), math.ceil(width / stride)


def rgb_to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).to(device)
    return x.permute(2, 0, 1)[None].float() / 255


def tensor_to_rgb(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float -> (H, W, 3) uint8, rounded half up after clamping."""
    x = torch.clamp(x[0], 0.0, 1.0).permute(1, 2, 0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


@dataclass
class Analysis:
    """Continuous encoder outputs of one image, ready to be coded at any rate knob."""

    model: LoadedModel
    width: int
    height: int
    e_y: torch.Tensor
    e_c: torch.Tensor
    p: torch.Tensor

    def codes(self, knob: float) -> Encoded:
        return self.model.net.quantize(self.e_y, self.e_c, self.p, knob)

    def encode(self, knob: float) -> bytes:
        """A complete `.lic` file at rate knob ``knob`` (rounded to the stored thousandths)."""
        knob = round(min(max(knob, KNOB_MIN), KNOB_MAX), 3)
        codes = self.codes(knob)
        cfg = self.model.config
        tables = self.model.tables
        qi = codes.qi[0, 0].cpu().numpy()
        m_y = code_mask(codes.qi, cfg.n_luma, cfg.imp_levels)[0].cpu().numpy()
        m_c = code_mask(codes.qi, cfg.n_chroma, cfg.imp_levels)[0].cpu().numpy()
        sections = {
            SectionType.IMPORTANCE: sc.encode_importance(qi, tables["entropy.qi"]),
            SectionType.LUMA: sc.encode_codes(codes.luma[0].cpu().numpy(), m_y,
                                              tables["entropy.luma"]),
            SectionType.CHROMA: sc.encode_codes(codes.chroma[0].cpu().numpy(), m_c,
                                                tables["entropy.chroma"]),
        }
        header = Header(
            width=self.width, height=self.height, colour_mode=ColourMode.RGB, bit_depth=8,
            model_id=self.model.info.model_id, rate_knob=knob,
            entropy_method=EntropyMethod.STATIC_CONTEXT_V1,
        )
        return container.pack(LicFile(header, sections))


@torch.no_grad()
def analyse(model: LoadedModel, rgb: np.ndarray) -> Analysis:
    """Run the encoder networks on an (H, W, 3) uint8 image."""
    h, w = rgb.shape[:2]
    x = pad_to_multiple(rgb_to_tensor(rgb, model.device), model.config.stride)
    e_y, e_c, p = model.net.analyse(rgb_to_ycbcr(x))
    return Analysis(model, w, h, e_y, e_c, p)


def decode_codes(model: LoadedModel, lic: LicFile) -> Encoded:
    """Entropy-decode the symbols of a parsed file."""
    hdr = lic.header
    if hdr.entropy_method != EntropyMethod.STATIC_CONTEXT_V1:
        raise LicError(f"entropy method {hdr.entropy_method.name} is not supported by this lcodec")
    for need in (SectionType.IMPORTANCE, SectionType.LUMA, SectionType.CHROMA):
        if need not in lic.sections:
            raise LicError(f"the file has no {need.name.lower()} section")
    cfg = model.config
    h8, w8 = code_shape(hdr.width, hdr.height, cfg.stride)
    qi = sc.decode_importance(lic.sections[SectionType.IMPORTANCE], (h8, w8),
                              model.tables["entropy.qi"])
    qi_t = torch.from_numpy(qi)[None, None]
    m_y = code_mask(qi_t, cfg.n_luma, cfg.imp_levels)[0].numpy()
    m_c = code_mask(qi_t, cfg.n_chroma, cfg.imp_levels)[0].numpy()
    luma = sc.decode_codes(lic.sections[SectionType.LUMA], m_y, model.tables["entropy.luma"])
    chroma = sc.decode_codes(lic.sections[SectionType.CHROMA], m_c,
                             model.tables["entropy.chroma"])
    dev = model.device
    return Encoded(qi_t.to(dev), torch.from_numpy(luma)[None].to(dev),
                   torch.from_numpy(chroma)[None].to(dev))


@torch.no_grad()
def reconstruct(model: LoadedModel, codes: Encoded, width: int, height: int) -> np.ndarray:
    """Run the decoder networks and crop to (height, width, 3) uint8."""
    ycc = model.net.decompress(codes)
    return tensor_to_rgb(ycbcr_to_rgb(ycc))[:height, :width]

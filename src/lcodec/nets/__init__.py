"""The CWIC networks: blocks and the dual-branch model."""

from lcodec.nets.cwic import CWIC, Encoded

__all__ = ["CWIC", "Encoded"]

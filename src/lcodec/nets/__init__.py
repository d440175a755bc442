"""The CWIC networks: blocks, the v1 dual-branch model and network v2."""

from lcodec.nets.codes import Encoded
from lcodec.nets.cwic import CWIC
from lcodec.nets.cwic2 import CWIC2

__all__ = ["CWIC", "CWIC2", "Encoded"]

"""Test protocols and their metrics (pure torch; used by the Lightning module and evaluate.py)."""

from spp_cls.evaluation.protocols import PROTOCOLS, TestProtocol, build_protocol

__all__ = ["PROTOCOLS", "TestProtocol", "build_protocol"]

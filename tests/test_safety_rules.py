"""CK107 and the legacy magic-number check: decided by the classes compared, from the reader's facts (torch-free)."""

from __future__ import annotations

from ckptlint.inventory import FormatFacts, GlobalRef, Inventory
from ckptlint.results import Blocker, Verdict
from ckptlint.rules.safety import safety_findings

ANOMALY = ("pickle#0: torch compares an object the file builds with 119547037146038801333356; whether it passes "
           "is known only by running it (the rest of the file is scanned)")


def _inventory(compared: str | None, cls: str) -> Inventory:
    extra = {} if compared is None else {"magic_compared_with": compared}
    module, name = cls.rsplit(".", 1)
    facts = FormatFacts(format="torch-legacy", file_size=100, bytes_read=100, streams=("pickle#0",),
                        loaded_streams=("pickle#0",), extra=extra)
    return Inventory(path="x.metadata", facts=facts, tensors=(), storages=(),
                     globals=(GlobalRef(module, name, "pickle#0", 2, "GLOBAL"),), structure=None, metadata={},
                     anomalies=(ANOMALY,))


def _ck107(compared: str | None, cls: str, category: str) -> list[str]:
    blocker = Blocker("format", "Invalid magic number")
    verdict = Verdict(False, (blocker,), "2.14", "", {cls: category})  # type: ignore[dict-item]
    return [f.message for f in safety_findings(_inventory(compared, cls), verdict) if f.code == "CK107"]


def test_magic_check_on_a_data_class_is_decided() -> None:
    cls = "torch.distributed.checkpoint.metadata.Metadata"
    assert _ck107(cls, cls, "data") == []


def test_magic_check_on_other_classes_stays_an_anomaly() -> None:
    assert len(_ck107("mylab.Magic", "mylab.Magic", "unknown")) == 1


def test_without_the_fact_the_anomaly_stays() -> None:
    cls = "torch.distributed.checkpoint.metadata.Metadata"
    assert len(_ck107(None, cls, "data")) == 1

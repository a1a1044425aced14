"""Every ``python train.py …`` / ``python evaluate.py …`` command in a shell code block of README.md or docs/ (and
``bash scripts/demo.sh …``, ``sbatch … scripts/slurm/train.sbatch …``, ``docker run … spp-cls train …``, which
pass their arguments to train.py) composes with Hydra and passes the start-up validation, as ``--cfg job`` and the
start of the run would: a renamed key or a refused value breaks this test instead of the reader. Sweeps (``-m``)
are expanded into their jobs. Paths of the reader's data that do not exist here are stood in for by empty ones
(``StandIns``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from spp_cls.config.validation import ConfigError
from tests.docs.commands import Command, StandIns, check_job, documented_commands, hydra_context, jobs

COMMANDS = documented_commands()
# Hydra's note on the submitit launcher configs, which spp_cls.config.register_configs silences outside pytest
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_\w+' is validated against:UserWarning")


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> StandIns:
    return StandIns(tmp_path_factory.mktemp("stand-ins"))


@pytest.fixture(scope="module", autouse=True)
def hydra_conf() -> None:
    with hydra_context():
        yield


def test_the_docs_show_commands_of_both_entry_points() -> None:
    configs = {c.config for c in COMMANDS}
    assert configs == {"train", "evaluate"}, configs
    assert any(c.source.startswith("README.md") for c in COMMANDS)
    assert any(c.multirun for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_composes_and_validates(command: Command, stand_ins: StandIns) -> None:
    for overrides in jobs(command):
        try:
            check_job(command, overrides, stand_ins)
        except Exception as err:  # noqa: BLE001  (the message should name the command)
            raise AssertionError(
                f"{command.source}: {command.text}\n  job: {overrides}\n  {type(err).__name__}: {err}"
            ) from err


@pytest.mark.parametrize(
    "text,error",
    [
        ("python train.py data.batch_sise=3", ConfigCompositionException),  # a renamed key
        ("python train.py model.pyramid=[6,0]", ConfigError),  # a refused value
        ("python train.py seed=0,1", ConfigCompositionException),  # a sweep without -m
        ("python train.py -m trainer.devices=2 seed=0,1", ConfigError),  # DDP in a basic-launcher multirun
        ("python evaluate.py ckpt_path=x.ckpt protocol.multiview.layuot=ten", ConfigCompositionException),
        ("python train.py data=imagenet data.root=/nowhere/imagenet eval_checkpoint=final", ConfigError),
    ],
)
def test_a_broken_command_fails(text: str, error: type, stand_ins: StandIns, tmp_path: Path) -> None:
    readme = tmp_path / "page.md"
    readme.write_text(f"```bash\n{text}\n```\n")
    import tests.docs.commands as commands

    files = commands.documentation_files
    commands.documentation_files = lambda: [readme]  # type: ignore[assignment]
    try:
        (command,) = [c for c in commands.documented_commands()]
    finally:
        commands.documentation_files = files  # type: ignore[assignment]
    with pytest.raises(error):
        for overrides in jobs(command):
            check_job(command, overrides, stand_ins)

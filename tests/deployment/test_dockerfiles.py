"""The Dockerfiles of docker/: hadolint finds nothing in them, and each image is multi-stage, built on pinned base
images, run as an unprivileged user, with no model weights in it."""

import re
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT
from tests.deployment.conftest import DOCKERFILES, dockerfile_instructions, tool

# Ways of fetching weights at build time that an image must not use: weights are mounted (docs/deployment.md).
WEIGHT_DOWNLOADS = re.compile(r"snapshot_download|huggingface-cli|hf download|modelscope|\.safetensors|\.gguf", re.I)


def hadolint(dockerfile) -> subprocess.CompletedProcess:
    # style: the lowest threshold, so that every finding, down to a style hint, fails.
    return subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold=style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_there_are_the_app_image_and_the_three_serving_images():
    assert [path.name for path in DOCKERFILES] == [
        "app.Dockerfile",
        "serving-cpu.Dockerfile",
        "serving-lmdeploy.Dockerfile",
        "serving-vllm.Dockerfile",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(dockerfile):
    linted = hadolint(dockerfile)

    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout == ""


def test_hadolint_finds_what_it_should(tmp_path):
    careless = tmp_path / "careless.Dockerfile"
    careless.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")

    linted = hadolint(careless)

    assert linted.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015"):  # latest tag; unpinned packages; recommended packages pulled in
        assert rule in linted.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_each_image_is_multi_stage_on_pinned_bases_and_runs_unprivileged_without_weights(dockerfile):
    instructions = dockerfile_instructions(dockerfile)
    stages = [i.arguments.split() for i in instructions if i.keyword == "FROM"]
    stage_names = {words[2] for words in stages if len(words) == 3 and words[1].upper() == "AS"}

    assert len(stages) >= 2, "a build stage and a runtime stage"
    for words in stages:
        image, _, tag = words[0].partition(":")
        assert image in stage_names or re.fullmatch(r"\d+(\.\d+)+[\w.-]*", tag), f"{words[0]} is not pinned"
    final_stage = instructions[max(n for n, i in enumerate(instructions) if i.keyword == "FROM") :]
    users = [i.arguments for i in final_stage if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image must not run as root"
    assert users[-1] == "10001:10001"
    for instruction in instructions:
        assert not WEIGHT_DOWNLOADS.search(instruction.arguments), f"weights in the image: {instruction.arguments}"
        assert not (instruction.keyword == "COPY" and re.search(r"\bvar\b|models", instruction.arguments))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_skipped_lint_rule_says_why(dockerfile):
    for instruction in dockerfile_instructions(dockerfile):
        ignores = [line for line in instruction.comments if line.startswith("# hadolint ignore=")]
        reasons = [line for line in instruction.comments if line.startswith("#") and "hadolint" not in line]
        assert not ignores or reasons, f"{dockerfile.name}: {ignores} without a reason above {instruction.keyword}"


# What ./kbctl installs from Debian for running but an image does not need: the demo's text (containers seed no demo).
NOT_FOR_THE_IMAGE = {"python3.11-doc"}


def test_the_app_image_has_the_debian_packages_kbctl_installs_for_running():
    kbctl = (PROJECT_ROOT / "kbctl").read_text()
    function = kbctl[kbctl.index("install_debian_packages() {") :]
    for_running = function[: function.index('if [ "$1" = test ]')]
    needed = set(re.findall(r"missing\+=\(([\w.+-]+)\)", for_running)) - NOT_FOR_THE_IMAGE
    installed = {
        package.split("=")[0]
        for instruction in dockerfile_instructions(PROJECT_ROOT / "docker" / "app.Dockerfile")
        if instruction.keyword == "RUN" and "apt-get install" in instruction.arguments
        for package in instruction.arguments.split()
        if "=" in package and not package.startswith("-")
    }

    missing = needed - installed
    assert not missing, (
        f"./kbctl installs {sorted(missing)} to run the app; docker/app.Dockerfile's build stage needs them too "
        "(and their run-time libraries in its final stage)"
    )

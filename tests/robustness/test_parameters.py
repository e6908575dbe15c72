"""Settings a user can get wrong, refused with what to change before a job is queued: nothing queued,
no run folder made, nothing outside the workspace changed.

The user has uploaded a dataset; the Synthesize page (and `core run`) submit through JobStore.submit,
which checks the whole configuration and the memory the synthetic images will need.
"""
from __future__ import annotations

import math

import pytest

from core.errors import ParamError
from core.experiment import ExperimentConfig
from core.jobs import JobStore
from tests.robustness.conftest import png

TREE = {**{f"set/normal/n{i}.png": png(i) for i in range(8)}, **{f"set/crack/c{i}.png": png(20 + i) for i in range(3)}}
SIZES = "(16, 32, 64, 128, 256)"


@pytest.fixture
def job(user):
    """(store, config): a valid experiment config on the user's uploaded dataset."""
    root = user.prepare(TREE, "folder")()
    config = {"data": str(root), "methods": ["smote"], "seeds": [0], "ratio": None, "image_size": 32,
              "test_per_class": 2, "overrides": {"classifier": {"epochs": 1}}, "num_threads": 1}
    return JobStore(user.ws), config


def refused(user, store: JobStore, config: dict, **submit) -> str:
    with user.unchanged_outside():
        with pytest.raises(ParamError) as err:
            store.submit(config, **submit)
    assert store.list() == [] and list(user.ws.runs.iterdir()) == []   # nothing queued, no run folder
    return str(err.value)


def test_a_valid_configuration_is_queued_inside_the_workspace(user, job):
    store, config = job
    with user.unchanged_outside():
        job_id = store.submit(config)
    assert [j.id for j in store.list()] == [job_id] and (user.ws.runs / job_id).is_dir()


@pytest.mark.parametrize("key, what", [("ratio", "imbalance ratio"), ("target_ratio", "target ratio")])
@pytest.mark.parametrize("value", [0, -0.1, 1.5, math.inf, math.nan])
def test_ratios_outside_zero_one(user, job, key, what, value):
    store, config = job
    message = refused(user, store, {**config, key: value})
    hint = ("e.g. 0.1 keeps at most 10% of the normal class's count per defect class" if key == "ratio" else
            "1.0 balances every class up to the majority count")
    assert message == f"{what} must be in (0, 1], got {value}; {hint}"


@pytest.mark.parametrize("key, value, message", [
    ("ratio", "a tenth", "ratio must be a number in (0, 1], e.g. 0.1; got 'a tenth'"),
    ("image_size", "big", "image_size must be a whole number of pixels, e.g. 64; got 'big'"),
    ("image_size", None, "image_size must be a whole number of pixels, e.g. 64; got None"),
    ("seeds", "one,two", "seeds must be whole numbers, e.g. 0,1,2; got 'one,two'"),
    ("test_per_class", "some", "test_per_class must be a whole number of images (e.g. 20) or a fraction in (0, 1); "
                               "got 'some'"),
    ("num_threads", 0, "num_threads must be a whole number of CPU threads of at least 1, e.g. 2; got 0"),
])
def test_settings_that_are_not_numbers(user, job, key, value, message):
    store, config = job
    assert refused(user, store, {**config, key: value}) == message


@pytest.mark.parametrize("size", [4, 8, 48, 100, 512])
def test_image_sizes_the_networks_do_not_support(user, job, size):
    store, config = job
    assert refused(user, store, {**config, "image_size": size}) == \
        f"image size {size} is not supported; choose one of {SIZES}"


@pytest.mark.parametrize("override, message", [
    ({"classifier": {"epochs": 0}}, "classifier.epochs must be at least 1, got 0"),
    ({"classifier": {"epochs": 10 ** 9}}, "classifier.epochs must be at most 1000, got 1000000000"),
    ({"classifier": {"epochs": "many"}}, "classifier.epochs expects int, got 'many'"),
    ({"smote": {"k_neighbors": 0}}, "smote.k_neighbors must be at least 1, got 0"),
])
def test_zero_or_huge_epochs_and_out_of_range_method_settings(user, job, override, message):
    store, config = job
    assert refused(user, store, {**config, "overrides": override}) == message


def test_gan_steps_zero_or_huge(user, job):
    store, config = job
    gan = {**config, "methods": ["dcgan"]}
    assert refused(user, store, {**gan, "overrides": {"dcgan": {"steps": 0}}}) == \
        "dcgan.steps must be at least 1, got 0"
    assert refused(user, store, {**gan, "overrides": {"dcgan": {"steps": 10 ** 7}}}) == \
        "dcgan.steps must be at most 1000000, got 10000000"


def test_more_synthetic_images_than_memory_allows(user, job, monkeypatch):
    store, config = job
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "3e9")
    # the Synthesize page passes the counts after the simulated imbalance: a large majority class
    counts = {"normal": 20_000, "crack": 5}
    message = refused(user, store, {**config, "image_size": 64}, counts=counts)
    assert message == ("this job would need about 4.9 GB of memory for 40,000 training images (19,995 of them "
                       "synthetic) per method and seed, more than the 3.0 GB a job may use here. Lower the target "
                       "balance ratio or the image size, or simulate a stronger imbalance (a smaller ratio), then "
                       "launch again.")
    with user.unchanged_outside():   # what the message suggests works
        assert store.submit({**config, "image_size": 32}, counts=counts)


def test_real_images_alone_over_the_memory_bound(user, job, monkeypatch):
    store, config = job
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "2e9")
    message = refused(user, store, {**config, "image_size": 64, "target_ratio": 0.001},
                      counts={"normal": 200_000, "crack": 5})
    assert message == ("this job would need about 24.6 GB of memory for 200,200 training images (195 of them "
                       "synthetic) per method and seed, more than the 2.0 GB a job may use here. Even the real images "
                       "alone do not fit: lower the image size, or use fewer images, then launch again.")


def test_the_experiment_config_says_the_same_without_a_store(job):
    _, config = job
    with pytest.raises(ParamError, match=r"^image size 48 is not supported; choose one of \(16, 32, 64, 128, 256\)$"):
        ExperimentConfig.from_dict({**config, "image_size": 48})


_PREFLIGHT = """
import json, sys
from core.errors import ParamError
from core.jobs import preflight
def peak():   # this process's own high-water mark (ru_maxrss would carry the parent's over fork and exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
big = json.loads(sys.argv[1])
preflight({**big, "overrides": {"gan": {"g_width": 8, "d_width": 8}}})   # every import made, torch's included
before = peak()
try:
    preflight(big)
    message = None
except ParamError as err:
    message = str(err)
print(json.dumps({"message": message, "before": before, "peak": peak()}))
"""


def test_networks_too_large_for_memory_are_refused_before_queueing(user, job, monkeypatch):
    """gan with g_width = d_width = 2048 at 256 px (the form's bounds allow it): 2.47 billion parameters,
    ~40 GB with gradients and Adam; counted on the meta device, so the check itself stays small (measured
    in a fresh process: it once estimated 47 MB and let the job start)."""
    import json
    import subprocess
    import sys
    from tests.conftest import REPO
    import torch._dynamo  # noqa: F401  torch's compiler, imported by torch's meta kernels (as by any Adam step),
    #                       makes its cache folder in the system temp folder once per process: torch's, not ours
    store, config = job
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "16e9")
    big = {**config, "methods": ["gan"], "image_size": 256,
           "overrides": {**config["overrides"], "gan": {"g_width": 2048, "d_width": 2048}}}
    message = refused(user, store, big)
    assert message == ("gan would need about 39.7 GB of memory to train its networks at 256 px (2,466.7 million "
                       "parameters with latent_dim=100, g_width=2048, d_width=2048: weights, gradients and Adam's two "
                       "moments, plus one batch's activations), more than the 16.0 GB a job may use here. Lower "
                       "gan.g_width and gan.d_width or the image size, then launch again.")
    out = subprocess.run([sys.executable, "-c", _PREFLIGHT, json.dumps(big)], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**__import__("os").environ, "DEFECTAUG_MAX_JOB_MEMORY": "16e9"})
    got = json.loads(out.stdout)
    assert got["message"] == message
    grew = got["peak"] - got["before"]       # the interpreter with torch imported is ~0.5 GB already
    assert grew < 100 * 1024 ** 2, f"the check itself raised the peak RSS by {grew / 2 ** 20:.0f} MiB"
    with user.unchanged_outside():   # what the message suggests works
        assert store.submit({**big, "overrides": {**config["overrides"], "gan": {"g_width": 256, "d_width": 256}}})


def test_a_large_batch_of_a_convolutional_gan_names_the_batch_size(user, job, monkeypatch):
    import torch._dynamo  # noqa: F401  (see above)
    store, config = job
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "2e9")
    message = refused(user, store, {**config, "methods": ["dcgan"], "image_size": 128,
                                    "overrides": {**config["overrides"], "dcgan": {"batch_size": 1024}}})
    assert message.startswith("dcgan would need about ")
    assert message.endswith("more than the 2.0 GB a job may use here. Lower dcgan.batch_size (now 1024) or the "
                            "image size, then launch again.")


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("data", [None, "", "   ", 3, ["a"]])
def test_a_job_without_a_dataset_is_refused(user, job, data, check):
    """data None once raised TypeError; data "" skipped the data-root check and walked the current folder."""
    store, config = job
    message = refused(user, store, {**config, "data": data}, check=check)
    assert message == "no dataset given: set data to a folder or a .zip of class folders"


def test_a_job_without_the_data_key_or_with_a_non_json_value_is_refused(user, job):
    store, config = job
    assert refused(user, store, {k: v for k, v in config.items() if k != "data"}) == (
        "no dataset given: set data to a folder or a .zip of class folders")
    assert refused(user, store, {**config, "seeds": {1, 2}}).startswith(
        "a job config holds only numbers, text, lists and dicts (")

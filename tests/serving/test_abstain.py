"""--abstain: trained on digits 0-4, the export abstains far more often on digits 5-9."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.runs import digit_arrays, fit_and_save_run
from tests.helpers.shards import write_dataset
from visiontrain.config import DataConfig, ExportConfig
from visiontrain.pipelines import record_sources
from visiontrain.serving import calibrate, export, signatures, verify_export
from visiontrain.training import rundir

KNOWN = [str(i) for i in range(5)]


@pytest.fixture(scope="module")
def abstaining(tmp_path_factory):
    root = tmp_path_factory.mktemp("abstain")
    images, labels = digit_arrays()
    train, val = np.arange(1500), np.arange(1500, len(labels))
    known_train, known_val = train[labels[train] < 5], val[labels[val] < 5]
    unknown_val = val[labels[val] >= 5]
    write_dataset(str(root / "known"), (images[known_train], labels[known_train]),
                  (images[known_val], labels[known_val]), KNOWN)
    write_dataset(str(root / "unknown"), (images[unknown_val][:4], labels[unknown_val][:4] - 5),
                  (images[unknown_val], labels[unknown_val] - 5), [str(i) for i in range(5, 10)])
    data = DataConfig(data_dir=str(root / "known"), image_size=8, eval_crop_fraction=1.0)
    fit_and_save_run(str(root / "run"), data, images[known_train], labels[known_train], KNOWN,
                     steps=150)
    config = ExportConfig(run_dir=str(root / "run"), export_dir=str(root / "models" / "digits"),
                          calibrate=True, abstain="auto", abstain_target=0.99,
                          unknown_data_dir=str(root / "unknown"))
    return config, export.export_run(config, rundir.load_run(config.run_dir))


@pytest.mark.slow
def test_auto_threshold_reaches_the_target_and_unknown_classes_abstain_more(abstaining):
    _, path = abstaining
    meta = json.load(open(os.path.join(path, export.METADATA)))
    abstain = meta["abstain"]
    assert abstain["mode"] == "auto" and abstain["target_accuracy"] == 0.99
    assert abstain["validation"]["accuracy_on_accepted"] >= 0.99
    assert 0.0 < abstain["validation"]["coverage"] < 1.0
    assert abstain["unknown_images"] == np.sum(digit_arrays()[1][1500:] >= 5)
    assert abstain["abstain_rate_unknown_classes"] > abstain["abstain_rate_known_classes"]
    chosen = [r for r in abstain["trade_off"] if r["threshold"] == abstain["threshold"]]
    assert chosen == [abstain["validation"]]
    text = calibrate.format_record(meta)
    assert "<- chosen" in text and "unknown classes" in text and "Temperature" in text


@pytest.mark.slow
def test_served_requests_carry_abstained_and_the_unknown_label(abstaining):
    config, path = abstaining
    meta = json.load(open(os.path.join(path, export.METADATA)))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    rows = [serve(image_bytes=encoded) for encoded, _ in
            record_sources.encoded_records(config.unknown_data_dir, "validation", 256)]
    (out,) = rows
    abstained = out[signatures.ABSTAINED].numpy()
    np.testing.assert_array_equal(
        abstained, out["probabilities"].numpy().max(1) < meta["abstain"]["threshold"])
    first = out["top_k_labels"].numpy()[:, 0].astype(str)
    assert set(first[abstained]) == {signatures.UNKNOWN}
    assert set(first[~abstained]) <= set(KNOWN)
    np.testing.assert_array_equal(out["top_k_labels"].numpy()[:, 1:],
                                  np.array(KNOWN, object)[out["top_k_indices"].numpy()[:, 1:]]
                                  .astype(bytes))
    description = verify_export.describe_signatures(verify_export.saved_model_cli_show(path))
    assert "abstained dtype: DT_BOOL" in description


@pytest.mark.parametrize("value", ["0", "1", "1.5", "sometimes"])
def test_a_bad_abstain_value_is_refused(value):
    with pytest.raises(ValueError, match="pass 'auto' or a probability strictly between 0 and 1"):
        ExportConfig(run_dir="r", export_dir="e", abstain=value)


def test_unknown_images_need_abstain():
    with pytest.raises(ValueError, match="pass --abstain too"):
        ExportConfig(run_dir="r", export_dir="e", unknown_data_dir="u")

"""Checks of notebook 07's exercise: correct solutions pass, typical mistakes fail with expected / got / hint."""
import numpy as np
import pytest
import torch

from check_helpers import failure_message
from segtutor import checks

# The official table, written out independently of segtutor (cityscapesScripts labels.py: label id -> train id).
OFFICIAL = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
            27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def lut_solution(label_ids, table=OFFICIAL):
    lut = torch.full((256,), 255, dtype=torch.int64)
    for label_id, train_id in table.items():
        lut[label_id] = train_id
    return lut[label_ids.long()]


def masked_solution(label_ids, table=OFFICIAL):
    out = torch.full(label_ids.shape, 255, dtype=torch.int64)
    for label_id, train_id in table.items():
        out[label_ids == label_id] = train_id          # reads the ORIGINAL ids: no chaining
    return out


def numpy_solution(label_ids, table=OFFICIAL):
    lut = np.full(256, 255, dtype=np.int64)
    lut[list(table)] = list(table.values())
    return torch.from_numpy(lut[label_ids.numpy()])


def wrong_fill_zero(label_ids, table=OFFICIAL):
    lut = torch.zeros(256, dtype=torch.int64)
    for label_id, train_id in table.items():
        lut[label_id] = train_id
    return lut[label_ids.long()]


def wrong_in_place_chain(label_ids, table=OFFICIAL):
    out = label_ids.clone().long()
    for label_id, train_id in table.items():
        out[out == label_id] = train_id                 # rewritten ids are matched again by later entries
    out[out > 18] = 255
    return out


def wrong_uint8(label_ids, table=OFFICIAL):
    return lut_solution(label_ids, table).to(torch.uint8)


def wrong_modifies_input(label_ids, table=OFFICIAL):
    result = lut_solution(label_ids, table)
    label_ids.copy_(result.to(label_ids.dtype))
    return result


def wrong_flat(label_ids, table=OFFICIAL):
    return lut_solution(label_ids, table).flatten()


def test_official_table_matches_segtutor():
    ids = torch.arange(256)
    assert torch.equal(lut_solution(ids), checks.labelids_to_trainids_reference(ids))
    assert (checks.labelids_to_trainids_reference(ids) != 255).sum() == 19


@pytest.mark.parametrize("solution", [lut_solution, masked_solution, numpy_solution,
                                      checks.labelids_to_trainids_reference])
def test_correct_solutions_pass(solution, capsys):
    checks.check_labelids_to_trainids(solution)
    assert "✓ labelids_to_trainids: passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", [
    (wrong_fill_zero, "train id 0 is road"),
    (wrong_in_place_chain, "every unlisted id becomes 255"),
    (wrong_uint8, ".long()"),
    (wrong_modifies_input, "in place"),
    (wrong_flat, "same shape as the input"),
])
def test_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("labelids_to_trainids", checks.check_labelids_to_trainids, wrong)
    assert hint in text


def test_stub_gives_a_clear_failure():
    def stub(label_ids):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_labelids_to_trainids(stub)

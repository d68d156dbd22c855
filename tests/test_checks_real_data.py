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


# ---------------------------------------------------------------------------------- joint random crop

def _pad(image, mask, size, mask_value):
    h, w = size
    ph, pw = max(0, h - mask.shape[0]), max(0, w - mask.shape[1])
    if ph or pw:
        image = torch.nn.functional.pad(image, (0, pw, 0, ph), value=0.0)
        mask = torch.nn.functional.pad(mask, (0, pw, 0, ph), value=mask_value)
    return image, mask


def crop_correct(image, mask, size, ignore_index=255):
    image, mask = _pad(image, mask, size, ignore_index)
    h, w = size
    top = int(torch.randint(0, mask.shape[0] - h + 1, ()))
    left = int(torch.randint(0, mask.shape[1] - w + 1, ()))
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


def crop_numpy_rng(image, mask, size, ignore_index=255):  # another correct way: numpy's generator, padding by hand
    import numpy as np

    h, w = size
    H, W = max(h, mask.shape[0]), max(w, mask.shape[1])
    big_image = image.new_zeros(image.shape[0], H, W)
    big_mask = mask.new_full((H, W), ignore_index)
    big_image[:, :image.shape[1], :image.shape[2]] = image
    big_mask[:mask.shape[0], :mask.shape[1]] = mask
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, ())))
    top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    return big_image[:, top:top + h, left:left + w], big_mask[top:top + h, left:left + w]


def crop_independent_draws(image, mask, size, ignore_index=255):
    crop_image, _ = crop_correct(image, mask, size, ignore_index)
    _, crop_mask = crop_correct(image, mask, size, ignore_index)
    return crop_image, crop_mask


def crop_off_by_one(image, mask, size, ignore_index=255):  # randint's high is exclusive: the last row never drawn
    image, mask = _pad(image, mask, size, ignore_index)
    h, w = size
    top = int(torch.randint(0, max(1, mask.shape[0] - h), ()))
    left = int(torch.randint(0, max(1, mask.shape[1] - w), ()))
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


def crop_off_by_one_crashes(image, mask, size, ignore_index=255):
    h, w = size
    top = int(torch.randint(0, mask.shape[0] - h, ()))
    left = int(torch.randint(0, mask.shape[1] - w, ()))
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


def crop_centre(image, mask, size, ignore_index=255):
    image, mask = _pad(image, mask, size, ignore_index)
    h, w = size
    top, left = (mask.shape[0] - h) // 2, (mask.shape[1] - w) // 2
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


def crop_pads_mask_with_zero(image, mask, size, ignore_index=255):
    image, mask = _pad(image, mask, size, 0)
    return crop_correct(image, mask, size, ignore_index)


def crop_no_padding(image, mask, size, ignore_index=255):
    h, w = size
    top = int(torch.randint(0, max(1, mask.shape[0] - h + 1), ()))
    left = int(torch.randint(0, max(1, mask.shape[1] - w + 1), ()))
    return image[:, top:top + h, left:left + w], mask[top:top + h, left:left + w]


def crop_in_place(image, mask, size, ignore_index=255):
    out = crop_correct(image, mask, size, ignore_index)
    mask.zero_()
    return out


def test_random_crop_reference_is_the_package_transform():
    from segtutor.data import transforms as T

    image, mask = torch.rand(3, 10, 11), torch.randint(0, 5, (10, 11))
    torch.manual_seed(3)
    ours = checks.random_crop_reference(image, mask, (4, 6))
    torch.manual_seed(3)
    theirs = T.RandomCrop((4, 6))(image, mask)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


@pytest.mark.parametrize("solution", [crop_correct, crop_numpy_rng, checks.random_crop_reference])
def test_random_crop_correct_solutions_pass(solution, capsys):
    state = torch.random.get_rng_state()
    checks.check_random_crop(solution)
    assert "✓ random_crop: passed" in capsys.readouterr().out
    assert torch.equal(torch.random.get_rng_state(), state)          # the caller's random state is left alone


@pytest.mark.parametrize("wrong,hint", [
    (crop_independent_draws, "draw top and left ONCE"),
    (crop_off_by_one, "never touches the bottom or right edge"),
    (crop_off_by_one_crashes, "torch.randint(low, high) excludes high"),
    (crop_centre, "at random"),
    (crop_pads_mask_with_zero, "the padding was labelled 0"),
    (crop_no_padding, "pad it first"),
    (crop_in_place, "modified in place"),
])
def test_random_crop_mistakes_fail_with_expected_got_and_hint(wrong, hint):
    text = failure_message("random_crop", checks.check_random_crop, wrong)
    assert hint in text


def test_random_crop_stub_gives_a_clear_failure():
    def stub(image, mask, size, ignore_index=255):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_random_crop(stub)

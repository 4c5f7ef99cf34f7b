"""memory: volume-sized arrays in ordinary pages are zero, writable, contiguous and freed with the array."""

import gc
import weakref

import numpy as np

from lungtrial.memory import new_volume


def test_new_volume_is_zero_and_writable():
    for shape, dtype, populate in [
        ((3, 4, 5), np.uint8, False),
        ((40, 256, 256), bool, False),
        ((40, 256, 256), np.uint8, True),
    ]:
        vol = new_volume(shape, dtype, populate)
        assert vol.shape == shape and vol.dtype == dtype and vol.flags.writeable and vol.flags.c_contiguous
        assert not vol.any()
        vol[-1, -1, -1] = 1
        ref = weakref.ref(vol)
        del vol
        gc.collect()
        assert ref() is None


def test_switched_off_new_volume_is_plain_numpy(monkeypatch):
    """``memory.ENABLED`` false (for the speed benchmark): a plain zero-filled numpy array."""
    from lungtrial import memory

    monkeypatch.setattr(memory, "ENABLED", False)
    a = new_volume((64, 256, 256), np.int16)
    assert a.flags.owndata and a.flags.writeable and not a.any()

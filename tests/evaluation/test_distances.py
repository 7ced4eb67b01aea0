import numpy as np
import pytest

from fctlib.evaluation.distances import DISTANCES, for_distance


def test_cosine_rows_have_unit_norm_and_l2_rows_are_unchanged():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(for_distance(x, "cosine"), [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    l2 = for_distance(x, "l2")
    assert l2.dtype == np.float32 and l2.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(l2, x.astype(np.float32))
    assert DISTANCES == ("l2", "cosine")
    with pytest.raises(ValueError, match="unknown distance 'l1'"):
        for_distance(x, "l1")

import random

import numpy as np
import pytest

from include.economics.rollups import percentile_from_counts


@pytest.mark.parametrize("seed", range(25))
def test_percentiles_from_a_frequency_table_equal_percentile_cont_on_the_raw_values(seed):
    rng = random.Random(seed)
    raw = [rng.choice([rng.randint(1, 50), rng.randint(1, 20_000)]) for _ in range(rng.randint(1, 300))]
    values = sorted(set(raw))
    counts = [raw.count(v) for v in values]

    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert percentile_from_counts(values, counts, q) == pytest.approx(np.percentile(raw, q * 100), abs=1e-9)


def test_a_single_value_is_every_percentile():
    assert percentile_from_counts([42.0], [7], 0.95) == 42.0

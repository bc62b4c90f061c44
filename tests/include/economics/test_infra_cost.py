from datetime import date
from decimal import Decimal

import pytest

from include.economics import infra_cost

DAY = date(2026, 11, 5)


def test_cost_explorer_groups_become_fleet_costs_and_untagged_cost_is_left_out():
    pages = [
        {
            "ResultsByTime": [
                {
                    "Groups": [
                        {
                            "Keys": ["fleet$gpu-default"],
                            "Metrics": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}},
                        },
                        {"Keys": ["fleet$"], "Metrics": {"UnblendedCost": {"Amount": "999", "Unit": "USD"}}},
                    ]
                }
            ]
        },
        {
            "ResultsByTime": [
                {"Groups": [{"Keys": ["fleet$gpu-default"], "Metrics": {"UnblendedCost": {"Amount": "0.25"}}}]}
            ]
        },
    ]

    assert infra_cost.parse_cost_explorer(pages) == {"gpu-default": Decimal("12.75")}
    request = infra_cost.cost_explorer_request(DAY)
    assert request["TimePeriod"] == {"Start": "2026-11-05", "End": "2026-11-06"}
    assert request["GroupBy"] == [{"Type": "TAG", "Key": "fleet"}]


def test_the_estimate_is_instance_hours_times_the_hourly_price():
    costs = infra_cost.estimate({"gpu-default": 10.5}, {"gpu-default": "g4dn.xlarge"}, infra_cost.DEFAULT_HOURLY_PRICES)

    assert costs == {"gpu-default": Decimal("2.36880")}  # 10.5 h x 0.2256


def test_an_unpriced_instance_type_and_an_unknown_source_are_refused():
    with pytest.raises(ValueError, match=r"no hourly price for 'p5\.48xlarge'"):
        infra_cost.estimate({"big": 1}, {"big": "p5.48xlarge"}, infra_cost.DEFAULT_HOURLY_PRICES)
    with pytest.raises(ValueError, match="infra_cost_source must be one of cost_explorer, estimate, none"):
        infra_cost.check_source("guess")

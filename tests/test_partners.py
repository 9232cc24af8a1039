"""Bilateral flows: mirror consistency and partner sums on every draw, the payer weight, the rest
of the world, and bad partner settings."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from iff import load_config, run
from iff.engine import prepare
from iff.errors import IffInputError
from iff.partners import REST_OF_WORLD, share_means

COUNTRIES = ["COL", "MEX", "USA"]
DRUG_PARTNERS = {
    "shares": {
        "COL": {"inward": {"MEX": 0.3, "USA": 0.5}},
        "MEX": {"outward": {"COL": 0.9}, "inward": {"USA": 0.8, "ESP": 0.1}},
        "USA": {"outward": {"MEX": 0.7, "COL": 0.2}},
    },
    "concentration": 30,
}
SMUGGLING_PARTNERS = {
    "shares": {"MEX": {"outward": {"USA": 0.9}, "inward": {"GTM": 0.6, "HND": 0.3}},
               "USA": {"inward": {"MEX": 0.7}}},
    "concentration": None,
}


def config(tmp_path, drugs_partners=DRUG_PARTNERS, smuggling_partners=SMUGGLING_PARTNERS,
           draws: int = 300):
    markets = {
        "drugs": {"drugs": {"cocaine": {"roles": {"COL": "producer", "MEX": "transit",
                                                  "USA": "consumer"}}}},
        "smuggling_of_migrants": {},
    }
    if drugs_partners is not None:
        markets["drugs"]["partners"] = drugs_partners
    if smuggling_partners is not None:
        markets["smuggling_of_migrants"]["partners"] = smuggling_partners
    conf = {"name": "partners", "countries": COUNTRIES, "years": [2019, 2020],
            "markets": markets,
            "sampler": {"method": "forward", "draws": draws, "chains": 2, "seed": 5},
            "output": {"dir": str(tmp_path / "results")}}
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def posterior(tmp_path_factory):
    return run(config(tmp_path_factory.mktemp("partners")), write=False).tree["posterior"]


def test_mirror_flows_agree_on_every_draw(posterior):
    bp = posterior["flows_by_partner"]
    assert list(bp["partner"].values) == [*COUNTRIES, REST_OF_WORLD]
    assert list(bp["partner_market"].values) == ["drugs", "smuggling_of_migrants"]
    positive = 0
    for a in COUNTRIES:
        for b in COUNTRIES:
            out_ab = bp.sel(country=a, partner=b, direction="outward")
            in_ba = bp.sel(country=b, partner=a, direction="inward")
            np.testing.assert_array_equal(out_ab.values, in_ba.values)
            if a == b:
                assert (out_ab.values == 0).all() and (in_ba.values == 0).all()
            positive += int((out_ab.values > 0).any())
    assert positive >= 4  # the pairs with shares carry flows, so the check is not vacuous


def test_partner_split_leaves_country_totals_unchanged(posterior):
    bp = posterior["flows_by_partner"]
    for market in bp["partner_market"].values:
        total = bp.sel(partner_market=market).sum("partner")
        flows = posterior["flows"].sel(market=market)
        np.testing.assert_allclose(total.transpose(*flows.dims), flows, rtol=1e-12, atol=0)


def test_bilateral_flow_is_the_weighted_mean_of_payer_and_receiver(posterior):
    own = posterior["drugs_flows_own"]
    s_out = posterior["drugs_partner_share_outward"]
    s_in = posterior["drugs_partner_share_inward"]
    payer = own.sel(country="USA", direction="outward") * s_out.sel(country="USA", partner="MEX")
    receiver = own.sel(country="MEX", direction="inward") * s_in.sel(country="MEX",
                                                                      partner="USA")
    got = posterior["flows_by_partner"].sel(partner_market="drugs", country="USA",
                                            partner="MEX", direction="outward")
    np.testing.assert_allclose(got, (0.5 * payer + 0.5 * receiver).transpose(*got.dims),
                               rtol=1e-10)
    # flows with the rest of the world keep each country's own estimate (ESP is outside)
    row = posterior["flows_by_partner"].sel(partner_market="drugs", country="MEX",
                                            partner=REST_OF_WORLD, direction="inward")
    expect = own.sel(country="MEX", direction="inward") * s_in.sel(country="MEX",
                                                                   partner=REST_OF_WORLD)
    np.testing.assert_allclose(row, expect.transpose(*row.dims), rtol=1e-10)


def test_shares_are_dirichlet_around_the_given_means_or_fixed(posterior):
    s = posterior["drugs_partner_share_outward"].sel(country="USA")
    np.testing.assert_allclose(s.sum("partner"), 1.0, rtol=1e-12)
    assert abs(float(s.sel(partner="MEX").mean()) - 0.7) < 0.02
    assert float(s.sel(partner="MEX").std()) > 0.02  # concentration 30: uncertain
    assert (s.sel(partner="USA").values == 0).all()
    fixed = posterior["smuggling_of_migrants_partner_share_inward"].sel(country="MEX")
    # GTM and HND are outside the run: their shares and the rest go to RoW, fixed
    np.testing.assert_array_equal(fixed.sel(partner=REST_OF_WORLD).values, 1.0)


def test_partners_outside_the_run_change_nothing(tmp_path):
    outside = {"shares": {"MEX": {"outward": {"PER": 0.5}, "inward": {"ESP": 0.4}}}}
    post = run(config(tmp_path, drugs_partners=outside, smuggling_partners=None, draws=100),
               write=False).tree["posterior"]
    flows = post["flows"].sel(market="drugs")
    np.testing.assert_allclose(flows, post["drugs_flows_own"].transpose(*flows.dims),
                               rtol=1e-12)
    assert list(post["flows_by_partner"]["partner_market"].values) == ["drugs"]


def test_share_means_aggregate_partners_outside_the_run():
    from iff.partners import PartnerSettings

    settings = PartnerSettings(shares={"MEX": {"outward": {"USA": 0.5, "PER": 0.2,
                                                           "ESP": 0.1}}})
    means = share_means(settings, COUNTRIES, "outward")
    np.testing.assert_allclose(means[1], [0.0, 0.0, 0.5, 0.5])  # RoW = 0.2 + 0.1 + 0.2 left
    np.testing.assert_allclose(means[0], [0.0, 0.0, 0.0, 1.0])  # no shares: all RoW


@pytest.mark.parametrize(("partners", "field", "reason"), [
    ({"shares": {"MEX": {"outward": {"USA": 0.8, "COL": 0.4}}}},
     "markets.drugs.partners.shares.MEX.outward", "more than 1"),
    ({"shares": {"MEX": {"outward": {"MEX": 0.5}}}},
     "markets.drugs.partners.shares.MEX.outward.MEX", "not its own partner"),
    ({"shares": {"BRA": {"outward": {"USA": 0.5}}}},
     "markets.drugs.partners.shares.BRA", "not a country of this run"),
    ({"shares": {"MEX": {"outward": {"USX": 0.5}}}},
     "markets.drugs.partners.shares.MEX.outward", "ISO 3166-1"),
    ({"shares": {"MEX": {"outwards": {"USA": 0.5}}}},
     "markets.drugs.partners.shares.MEX.outwards", "unknown key 'outwards'"),
    ({"shares": {"MEX": {"outward": {"USA": -0.1}}}},
     "markets.drugs.partners.shares.MEX.outward.USA", "greater than or equal to 0"),
    ({"shares": {}, "payer_weight": 1.5}, "markets.drugs.partners.payer_weight", "less than"),
])
def test_bad_partner_settings_name_field_and_reason(tmp_path, partners, field, reason):
    with pytest.raises(IffInputError) as info:
        prepare(load_config(config(tmp_path, drugs_partners=partners)))
    text = str(info.value)
    assert field in text and reason in text, text
    assert "partners.yaml" in text


def test_markets_without_counterparts_reject_partners(tmp_path):
    conf = {"name": "x", "countries": ["NGA"], "years": [2016],
            "markets": {"corruption": {"partners": {"shares": {}}}},
            "sampler": {"method": "forward"}}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(conf))
    with pytest.raises(IffInputError, match=r"markets\.corruption\.partners"):
        load_config(path)

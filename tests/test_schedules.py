"Property tests of maskviz.schedules: every family, random arguments."
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from maskviz.schedules import (FAMILIES, Schedule, constant, cosine, cyclic, exponential, linear, matched_constant,
                               mean_rate, parse_schedule, piecewise, predicted_tokens, step, warmup)

rates = st.floats(0, 1)
positive_rates = st.floats(1e-6, 1)
fractions = st.floats(1e-6, 1 - 1e-6)


def _piecewise(pairs):
    pairs = sorted(pairs)
    return piecewise(pairs)


plain = st.one_of(
    st.builds(constant, rates),
    st.builds(linear, rates, rates),
    st.builds(cosine, rates, rates),
    st.builds(step, rates, rates, fractions),
    st.builds(exponential, positive_rates, positive_rates),
    st.builds(_piecewise, st.lists(st.tuples(rates, rates), min_size=2, max_size=6)),
    st.builds(lambda a, b, c, s: cyclic(min(a, b), max(a, b), c, s), rates, rates,
              st.one_of(st.integers(1, 10), st.floats(0.1, 10)), st.sampled_from(["triangle", "cosine"])),
)
schedules = st.one_of(plain, st.builds(warmup, plain, fractions, rates))
progress_values = st.lists(st.floats(0, 1), min_size=1, max_size=50)


def test_every_family_is_covered():
    assert set(FAMILIES) == {"constant", "linear", "cosine", "step", "exponential", "piecewise", "cyclic", "warmup"}


@given(schedules, progress_values)
def test_rates_are_probabilities(s, ps):
    r = s.rates(ps)
    assert r.shape == (len(ps),) and ((r >= 0) & (r <= 1)).all()
    assert s(ps[0]) == r[0]


@given(schedules)
def test_spec_dict_and_pickle_round_trips(s):
    assert parse_schedule(str(s)) == s
    assert Schedule.from_dict(s.to_dict()) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(parse_schedule(str(s))) == hash(s)


@given(st.sampled_from([linear, cosine, exponential]), positive_rates, positive_rates)
def test_interpolating_families_hit_their_ends(family, start, end):
    s = family(start, end)
    assert s(0.0) == round(start, 12) and s(1.0) == round(end, 12)


@given(st.sampled_from([linear, cosine, exponential]), positive_rates, positive_rates)
def test_decays_never_increase(family, a, b):
    s = family(max(a, b), min(a, b))
    assert (np.diff(s.rates(np.linspace(0, 1, 257))) <= 1e-12).all()


@given(rates, rates, st.integers(1, 5000))
def test_budget_of_linear_is_the_trapezoid(start, end, total_steps):
    s = linear(start, end)
    steps_mean = start + (end - start) * (total_steps - 1) / (2 * total_steps)  # mean of p = step/total over 0..T-1
    assert mean_rate(s, total_steps) == pytest.approx(steps_mean, abs=1e-9)
    assert mean_rate(s) == pytest.approx((start + end) / 2, abs=1e-9)


@given(schedules, st.integers(1, 3000), st.integers(1, 10**6))
def test_matched_constant_predicts_the_same_tokens(s, total_steps, tokens):
    same = matched_constant(s, total_steps)
    assert predicted_tokens(same, total_steps, tokens) == pytest.approx(predicted_tokens(s, total_steps, tokens), rel=1e-6, abs=1e-3)


@given(schedules, st.integers(1, 10**6), st.data())
def test_at_is_rate_at_step_over_total(s, total, data):
    step_ = data.draw(st.integers(0, total))
    assert s.at(step_, total) == s(step_ / total)


@given(st.floats(allow_nan=True).filter(lambda v: not 0 <= v <= 1))
def test_rates_outside_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="must be"):
        linear(0.3, bad)
    with pytest.raises(ValueError, match="progress must be in"):
        linear(0.3, 0.15)(bad)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text):
    try:
        assert isinstance(parse_schedule(text), Schedule)
    except ValueError:
        pass


@given(st.sampled_from(["linear(0.3, 0.15)", "cosine(0.3, 0.15)", "step(0.3, 0.15)"]))
def test_paper_schedules_have_the_papers_midpoint(spec):
    assert parse_schedule(spec)(0.5) == (0.15 if spec.startswith("step") else 0.225)


@pytest.mark.parametrize("spec, message", [
    ("linear(0.3)", "missing a required argument: 'end'; the form is linear(start, end)"),
    ("cosine(0.3, 0.15, 0.1)", "too many positional arguments; the form is cosine(start, end)"),
    ("step(0.3, 0.15, at=1.0)", "at must be a fraction of training in (0, 1), got 1.0"),
    ("warmup(linear(0.3, 0.15), 0, 0.1)", "fraction must be a fraction of training in (0, 1), got 0"),
    ("constant(-0.1)", "rate must be a masking rate in [0, 1], got -0.1"),
    ("triangle(0.1, 0.3)", "unknown schedule family 'triangle'"),
    ("linear(0.3, 0.15) + 1", "expected a call like 'linear(0.3, 0.15)'"),
    ("linear(0.3; 0.15)", "malformed schedule spec"),
])
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError) as e:
        parse_schedule(spec)
    assert message in str(e.value) and repr(spec) in str(e.value)

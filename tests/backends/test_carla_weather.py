"""CARLA weather: the 14 fields and the presets against the real client, the weather and time-of-day randomizers."""

from __future__ import annotations

import types

import numpy as np
import pytest

from simgen.backends.carla_randomizers import CarlaTimeOfDay, CarlaWeather, TimeOfDayParams, WeatherParams
from simgen.backends.carla_spec import CarlaSection, WeatherState
from simgen.backends.carla_weather import (
    WEATHER_FIELDS,
    WEATHER_PRESETS,
    make_weather,
    sun_position,
    weather_values,
)
from simgen.randomizers.base import SampleContext
from simgen.sampling import rng_for
from simgen.spec.errors import spec_error_from_validation
from simgen.testing import check_randomizer

carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")


def _ctx() -> SampleContext:
    return SampleContext(spec=types.SimpleNamespace(carla=CarlaSection()), index=3)  # type: ignore[arg-type]


def test_the_14_fields_and_the_presets_are_the_clients() -> None:
    fields = sorted(n for n in dir(carla.WeatherParameters()) if not n.startswith("_") and not n[0].isupper())
    assert sorted(WEATHER_FIELDS) == fields
    assert len(WEATHER_FIELDS) == 14
    presets = sorted(n for n in dir(carla.WeatherParameters) if n[0].isupper())
    assert sorted(WEATHER_PRESETS) == presets


def test_every_field_maps_onto_its_carla_attribute() -> None:
    # Distinct values inside every field's range, so a field written to another attribute cannot go unnoticed.
    values = {
        name: float(b.low + (b.high - b.low) * (k + 1) / 20.0) for k, (name, b) in enumerate(WEATHER_FIELDS.items())
    }
    weather = make_weather(carla, None, values)
    assert isinstance(weather, carla.WeatherParameters)
    for name, value in values.items():
        assert getattr(weather, name) == pytest.approx(value, rel=1e-6), name
    assert weather_values(weather) == pytest.approx(values, rel=1e-6)


def test_a_preset_is_copied_and_fields_override_it() -> None:
    noon = carla.WeatherParameters.HardRainNoon
    before = weather_values(noon)
    weather = make_weather(carla, "HardRainNoon", {"sun_altitude_angle": -20.0})
    got = weather_values(weather)
    assert got["sun_altitude_angle"] == -20.0
    assert {k: v for k, v in got.items() if k != "sun_altitude_angle"} == pytest.approx(
        {k: v for k, v in before.items() if k != "sun_altitude_angle"}
    )
    assert weather_values(carla.WeatherParameters.HardRainNoon) == before  # the shared preset is untouched
    assert before["precipitation"] > 50  # it is the preset's values, not the class defaults


def test_unknown_presets_and_fields_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match="did you mean 'ClearNoon'"):
        make_weather(carla, "ClearNon", {})
    with pytest.raises(ValueError, match="did you mean 'fog_density'"):
        make_weather(carla, None, {"fog_densty": 1.0})
    with pytest.raises(ValueError, match=r"must lie in \[0, 100\]"):
        make_weather(carla, None, {"cloudiness": 150.0})
    with pytest.raises(Exception) as err:
        WeatherState.model_validate({"preset": "WetNon"})
    assert "WetNoon" in str(err.value)


def test_weather_params_name_the_field_at_fault() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        WeatherParams.model_validate({"fields": {"wetnes": {"kind": "uniform", "low": 0, "high": 10}}})
    text = str(spec_error_from_validation(err.value, WeatherParams, None))
    assert "fields.wetnes" in text and "did you mean 'wetness'" in text
    with pytest.raises(ValidationError) as err:
        WeatherParams.model_validate({"fields": {"mie_scattering_scale": {"kind": "uniform", "low": 0, "high": 9}}})
    assert "[0, 5]" in str(spec_error_from_validation(err.value, WeatherParams, None))
    with pytest.raises(ValidationError) as err:
        WeatherParams.model_validate({"preset": ["ClearNoon", "Nite"]})
    assert "preset[1]" in str(spec_error_from_validation(err.value, WeatherParams, None))


def test_weather_randomizer_samples_presets_and_fields() -> None:
    params = WeatherParams.model_validate(CarlaWeather.example_params)
    r = CarlaWeather(params)
    check_randomizer(r, _ctx())
    patch = r.sample(rng_for(1, "w"), _ctx())["carla"]["weather"]
    assert patch["preset"] in {"ClearNoon", "WetCloudySunset", "HardRainNight"}
    assert 0 <= patch["fields"]["fog_density"] <= 40
    WeatherState.model_validate(patch)
    presets = {r.sample(rng_for(s, "w"), _ctx())["carla"]["weather"]["preset"] for s in range(30)}
    assert len(presets) == 3
    # The patch drives the real client: a weather with the preset and the drawn fog.
    w = make_weather(carla, patch["preset"], patch["fields"])
    assert w.fog_density == pytest.approx(patch["fields"]["fog_density"], rel=1e-6)


def test_sun_position_at_known_places_and_hours() -> None:
    alt, _ = sun_position(12.0, 0.0, 80.0)  # equinox, equator, noon: overhead
    assert alt == pytest.approx(90.0, abs=1.0)
    alt, az = sun_position(6.0, 0.0, 80.0)  # equinox sunrise: on the horizon, due east
    assert alt == pytest.approx(0.0, abs=1.0)
    assert az == pytest.approx(90.0, abs=1.0)
    alt, az = sun_position(12.0, 41.4, 172.0)  # Barcelona, June solstice: 90 - 41.4 + 23.44, due south
    assert alt == pytest.approx(72.0, abs=1.0)
    assert az == pytest.approx(180.0, abs=1.0)
    alt, _ = sun_position(0.0, 41.4, 172.0)  # midnight: below the horizon
    assert alt < -20


def test_time_of_day_randomizer_sets_the_sun() -> None:
    r = CarlaTimeOfDay(TimeOfDayParams.model_validate(CarlaTimeOfDay.example_params))
    check_randomizer(r, _ctx())
    patch = r.sample(rng_for(0, "t"), _ctx())["carla"]["weather"]
    hour = patch["time_of_day"]["hour"]
    alt, az = sun_position(hour, 41.4, 172.0)
    assert patch["fields"] == {"sun_altitude_angle": alt, "sun_azimuth_angle": az % 360}
    WeatherState.model_validate(patch)
    night = CarlaTimeOfDay(TimeOfDayParams.model_validate({"hour": 23.0})).sample(rng_for(0, "t"), _ctx())
    assert night["carla"]["weather"]["fields"]["sun_altitude_angle"] < 0
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"\[0, 24\]"):
        TimeOfDayParams.model_validate({"hour": {"kind": "uniform", "low": 0, "high": 25}})
    assert np.isfinite(patch["fields"]["sun_azimuth_angle"])

"""CARLA weather: the 14 ``carla.WeatherParameters`` fields, the named presets, and the sun for an hour of the day.

The names and ranges are written out here, so that a spec validates and a randomizer samples without the
``carla`` package (randomizers never touch a simulator); a test checks them against the installed client.
The ranges are Unreal's clamps (``FWeatherParameters``: ``ClampMin``/``ClampMax``); where Unreal sets no
upper clamp (fog distance and falloff), simgen sets a generous one so a typo fails at load time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simgen.sampling import Bounds

#: The 14 fields of ``carla.WeatherParameters`` (0.9.14 to 0.9.16), in the order of its constructor, with ranges.
WEATHER_FIELDS: dict[str, Bounds] = {
    "cloudiness": Bounds(0, 100),
    "precipitation": Bounds(0, 100),
    "precipitation_deposits": Bounds(0, 100),
    "wind_intensity": Bounds(0, 100),
    "sun_azimuth_angle": Bounds(0, 360),
    "sun_altitude_angle": Bounds(-90, 90),
    "fog_density": Bounds(0, 100),
    "fog_distance": Bounds(0, 1e4),
    "fog_falloff": Bounds(0, 100),
    "wetness": Bounds(0, 100),
    "scattering_intensity": Bounds(0, 100),
    "mie_scattering_scale": Bounds(0, 5),
    "rayleigh_scattering_scale": Bounds(0, 2),
    "dust_storm": Bounds(0, 100),
}

#: The named presets of ``carla.WeatherParameters`` in the 0.9.16 client (class attributes).
WEATHER_PRESETS: tuple[str, ...] = (
    "ClearNight", "ClearNoon", "ClearSunset", "CloudyNight", "CloudyNoon", "CloudySunset", "Default", "DustStorm",
    "HardRainNight", "HardRainNoon", "HardRainSunset", "MidRainSunset", "MidRainyNight", "MidRainyNoon",
    "SoftRainNight", "SoftRainNoon", "SoftRainSunset", "WetCloudyNight", "WetCloudyNoon", "WetCloudySunset",
    "WetNight", "WetNoon", "WetSunset",
)  # fmt: skip


def check_weather_fields(fields: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown field name (with a did-you-mean) or a value outside its range."""
    from simgen.errors import did_you_mean

    for name, value in fields.items():
        bounds = WEATHER_FIELDS.get(name)
        if bounds is None:
            raise ValueError(
                f"unknown weather field '{name}'{did_you_mean(name, WEATHER_FIELDS)}; "
                f"the fields are {', '.join(WEATHER_FIELDS)}"
            )
        bounds.check(value)


def check_preset(name: str) -> str:
    """Return ``name`` if it is a preset of :data:`WEATHER_PRESETS`, else raise ``ValueError`` with a did-you-mean."""
    from simgen.errors import did_you_mean

    if name not in WEATHER_PRESETS:
        raise ValueError(f"unknown weather preset '{name}'{did_you_mean(name, WEATHER_PRESETS)}")
    return name


def make_weather(carla_module: Any, preset: str | None, fields: Mapping[str, float]) -> Any:
    """A new ``carla.WeatherParameters``: the preset's values (or the class defaults), then ``fields`` over them.

    Args:
        carla_module: The ``carla`` module (or a fake with the same ``WeatherParameters``).
        preset: A name of :data:`WEATHER_PRESETS`, or None.
        fields: Field name -> value, applied after the preset.

    Returns:
        A fresh object: the preset class attributes are never modified.
    """
    cls = carla_module.WeatherParameters
    base = getattr(cls, check_preset(preset)) if preset else cls()
    values = {name: float(getattr(base, name)) for name in WEATHER_FIELDS}
    check_weather_fields(fields)
    values.update({name: float(v) for name, v in fields.items()})
    weather = cls()
    for name, value in values.items():
        setattr(weather, name, value)
    return weather


def weather_values(weather: Any) -> dict[str, float]:
    """The 14 fields of a ``carla.WeatherParameters`` as plain floats (for the manifest)."""
    return {name: float(getattr(weather, name)) for name in WEATHER_FIELDS}


def sun_position(hour: float, latitude_deg: float, day_of_year: float) -> tuple[float, float]:
    """The sun's altitude and azimuth (degrees) at a local solar hour, latitude and day of the year.

    A textbook approximation (declination ``-23.44 cos(2 pi (N + 10) / 365)``, no equation of time), good
    to about a degree: plenty for lighting. The azimuth is measured from north through east, in [0, 360).

    Args:
        hour: Local solar time in hours, [0, 24]; 12 is solar noon.
        latitude_deg: Latitude in degrees, [-90, 90] (CARLA's towns are modelled on Barcelona, about 41.4).
        day_of_year: 1 to 366.

    Returns:
        ``(altitude_deg, azimuth_deg)``; the altitude is negative at night.
    """
    decl = math.radians(-23.44 * math.cos(2.0 * math.pi * (day_of_year + 10.0) / 365.0))
    lat = math.radians(latitude_deg)
    h = math.radians(15.0 * (hour - 12.0))
    sin_alt = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(h)
    altitude = math.degrees(math.asin(min(max(sin_alt, -1.0), 1.0)))
    azimuth = math.degrees(math.atan2(-math.sin(h), math.tan(decl) * math.cos(lat) - math.sin(lat) * math.cos(h)))
    return altitude, azimuth % 360.0

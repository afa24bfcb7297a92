"""Stand-in service that raises during start-up."""


def _load_settings() -> dict[str, str]:
    raise RuntimeError("settings are missing")


if __name__ == "__main__":
    _load_settings()

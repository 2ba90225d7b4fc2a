"""unigw's own echo provider and the offline demo that runs fourteen of them.

    echo.py     the provider (``python -m supervisor.demo.echo``): raw ASGI, OpenAI-shaped
    knobs.py    its knobs (flags, environment, ``/_echo/config``) and counters
    replies.py  the answers it builds
    demo.yaml   fourteen echo providers with the real providers' names, ports, keys, models

Nothing else in ``supervisor`` imports this package; it is a provider, not a part of unigw.
"""

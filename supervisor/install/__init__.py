"""Getting a provider ready to run: clone, toolchain, install steps, and how to start it.

    repos.py       clone at the pinned ref (GitPython), with progress
    toolchains.py  which python/go/deno/node each provider uses, and from where
    bootstrap.py   Go and Deno from the package registries into the state folder
    steps.py       per-runtime install steps behind an install stamp
    runspec.py     a provider's start argv, cwd and environment
"""

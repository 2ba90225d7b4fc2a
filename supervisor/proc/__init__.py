"""Child processes as the operating system sees them, below the lifecycle and the installers.

    process.py    spawn a child in its own session, sample its tree, stop the whole tree
    logs.py       a child's captured output: rotated files, a tail in memory, secrets scrubbed
    scrub.py      secret values taken out of an output stream on lines, however reads cut it
    leftovers.py  children of an instance that died, found by marker and killed
    instance.py   the record of the running instance (pid, URL), written by run, read by the CLI
    env.py        what of unigw's environment a child may see
    private_home.py  the HOME of a provider with files:, and its secret files written there
"""

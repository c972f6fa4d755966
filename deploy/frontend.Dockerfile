# syntax=docker/dockerfile:1.7
#
# task-tracker-frontend: nginx serving the Pulseboard web app (frontend/) with deploy/nginx.conf.
# Build from the repository root:
#   docker build -f deploy/frontend.Dockerfile -t task-tracker-frontend .
#   docker run --rm -p 80:80 -e PULSEBOARD_API_URL=http://localhost:8080 task-tracker-frontend

ARG NGINX_VERSION=1.28
FROM nginx:${NGINX_VERSION}-alpine

# The stock default site goes; ours replaces it. The shipped config.js is kept as
# config.dist.js: deploy/frontend-config.sh appends the API address to it at start-up.
RUN rm -f /etc/nginx/conf.d/default.conf /usr/share/nginx/html/*
COPY deploy/nginx.conf /etc/nginx/conf.d/default.conf
COPY frontend/ /usr/share/nginx/html/
COPY --chmod=0755 deploy/frontend-config.sh /docker-entrypoint.d/40-pulseboard-config.sh
RUN set -eu; \
    mkdir -p /usr/share/pulseboard; \
    if [ -f /usr/share/nginx/html/config.js ]; then \
      mv /usr/share/nginx/html/config.js /usr/share/pulseboard/config.dist.js; \
    fi; \
    chmod -R a+rX /usr/share/nginx/html; \
    nginx -t

ENV PULSEBOARD_API_URL="" \
    PULSEBOARD_API_PORT=8080

EXPOSE 80
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/healthz"]
# The base image's ENTRYPOINT (/docker-entrypoint.sh, which runs /docker-entrypoint.d/*) and
# CMD (nginx -g 'daemon off;') are kept.

# One image for both binaries (campaign-api, campaign-worker) and the message
# templates: static Go binaries (CGO_ENABLED=0) on an empty base, run as a
# non-root user. The command says which process a container is:
#
#   docker build -t wacampaign/wacampaign:0.1.0 .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://… -e API_KEYS=… wacampaign/wacampaign:0.1.0
#   docker run --rm -e REDIS_URL=redis://… wacampaign/wacampaign:0.1.0 campaign-worker
#
# The root filesystem is assembled in /out of the stage named by ROOTFS:
# "build" compiles it here; "prebuilt" takes it from dist/rootfs/ in the
# build context, which scripts/image.sh fills on a machine that cannot pull
# the golang image (it builds with buildah instead of docker).
ARG GO_VERSION=1.26.8
ARG ROOTFS=build

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
COPY templates/ templates/
# timetzdata: the send windows need time zones, and scratch has no zoneinfo.
# /tmp: uploads are spooled there (1777, like any /tmp).
RUN CGO_ENABLED=0 go build -trimpath -tags timetzdata -ldflags="-s -w" \
        -o /out/usr/local/bin/ ./cmd/campaign-api ./cmd/campaign-worker \
    && mkdir -p /out/app /out/etc/ssl/certs \
    && mkdir -m 1777 /out/tmp \
    && cp -r templates /out/app/templates \
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch AS prebuilt
COPY dist/rootfs/ /out/

# hadolint ignore=DL3006
FROM ${ROOTFS} AS rootfs

FROM scratch
COPY --from=rootfs /out/ /
WORKDIR /app
ENV PATH=/usr/local/bin \
    ADDR=0.0.0.0:8080
# distroless' "nonroot" user, which the Helm chart's securityContext names.
USER 65532:65532
EXPOSE 8080
CMD ["campaign-api"]

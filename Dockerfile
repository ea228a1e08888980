# maskgate and its CXone simulator: static binaries on a distroless base, as nonroot.
#   docker build -t maskgate .                         the gateway (default target; VERSION and REVISION below)
#   docker build -t cxone-sim --target cxone-sim .     the simulator
FROM golang:1.27-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version maskgate reports (maskgate version, maskgate_build_info, the start-up
# line): docker build --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD)
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" -o /out/maskgate ./cmd/maskgate
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/cxone-sim ./cmd/cxone-sim

FROM gcr.io/distroless/static-debian12:nonroot AS cxone-sim
COPY --from=build /out/cxone-sim /cxone-sim
USER nonroot:nonroot
EXPOSE 8090
ENTRYPOINT ["/cxone-sim", "-addr", "0.0.0.0:8090"]

FROM gcr.io/distroless/static-debian12:nonroot AS maskgate
COPY --from=build /out/maskgate /maskgate
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --retries=3 CMD ["/maskgate", "healthcheck"]
ENTRYPOINT ["/maskgate"]

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY projections ./projections
COPY api ./api
RUN pip install --no-cache-dir .
ENV INCIDENT_LEDGER_HOST=0.0.0.0
EXPOSE 8000
CMD ["incident-ledger", "serve"]

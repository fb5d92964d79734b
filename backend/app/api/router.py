"""All API routers."""

from fastapi import APIRouter

from app.api.routes import health, todos

API_V1_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_V1_PREFIX)
api_router.include_router(todos.router)

# Outside the versioned prefix: probed by Docker, load balancers and monitoring.
root_router = APIRouter()
root_router.include_router(health.router)

"""A job's figure and table crops: `GET /jobs/{id}/images/{name}` serves one, and `format=zip` on the result
route bundles them with the result (see app/api/bundle.py). Scoped like every job route: a job of another API
key is a 404."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.bundle import zip_response
from app.api.deps import JobsDep, SettingsDep
from app.api.job_views import OwnerDep, owned_job
from app.api.upload import uploads_dir
from app.errors import NotFound
from app.jobs import files
from app.storage.images import MEDIA_TYPES

router = APIRouter(tags=["jobs"])

# Exactly the names figures.py writes: nothing else (no dot files, no path separators) can be asked for.
IMAGE_NAME = re.compile(r"^p\d{1,6}-(?:fig|chart|table|formula)\d{1,4}\.(?:png|jpg)$")


@router.get(
    "/jobs/{job_id}/images/{name}",
    summary="One figure or table crop of a job",
    description="The names are those the result links (`images/<name>`). 404 for another key's job or an "
    "unknown name.",
    response_class=FileResponse,
)
async def get_image(job_id: str, name: str, jobs: JobsDep, owner: OwnerDep, settings: SettingsDep) -> FileResponse:
    job = await owned_job(job_id, jobs, owner)
    path = files.job_images_dir(settings, job.id) / name
    if not IMAGE_NAME.match(name) or not path.is_file():
        raise NotFound(f"job {job.id} has no image {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "private, max-age=3600"})


async def job_bundle(settings: object, job_id: str) -> FileResponse:
    """The zip of a succeeded job's result (the caller has checked the job's owner and status)."""
    return await zip_response(files.job_dir(settings, job_id), filename=f"{job_id}.zip",  # type: ignore[arg-type]
                              scratch_dir=uploads_dir(settings))  # type: ignore[arg-type]

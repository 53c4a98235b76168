"""The usual stack, as a FastAPI template builds it: FastAPI + Pydantic models + SQLAlchemy ORM
(async session), with the same routes, JWT check and queries as tasks-api. Benchmark only."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped

from persistence.database_url import async_url, connect_arguments
from persistence.tables import tasks as tasks_table

SECRET = os.environ["JWT_SECRET"]
_arguments = connect_arguments(os.environ["DATABASE_URL"])


async def _connect() -> asyncpg.Connection:
    return await asyncpg.connect(**_arguments)


engine = create_async_engine(
    async_url(os.environ["DATABASE_URL"]), pool_size=10, max_overflow=10, async_creator=_connect
)
Session = async_sessionmaker(engine, expire_on_commit=False)
Priority = Literal["low", "medium", "high"]


class Base(DeclarativeBase):
    pass


class TaskRow(Base):
    __table__ = tasks_table
    id: Mapped[uuid.UUID]
    user_id: Mapped[str]
    title: Mapped[str]
    description: Mapped[str | None]
    completed: Mapped[bool]
    priority: Mapped[str]
    due_date: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    completed: bool = False
    priority: Priority = "medium"
    due_date: datetime | None = None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    user_id: str
    title: str
    description: str | None
    completed: bool
    priority: Priority
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class Completion(BaseModel):
    completed: bool


app = FastAPI()


async def session() -> AsyncIterator[AsyncSession]:
    async with Session() as db, db.begin():
        yield db


def owner(user_id: str, authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401)
    try:
        claims = jwt.decode(
            authorization[7:], SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError:
        raise HTTPException(401) from None
    if claims["sub"] != user_id:
        raise HTTPException(403)
    return user_id


Owner = Annotated[str, Depends(owner)]
Db = Annotated[AsyncSession, Depends(session)]


async def owned(db: AsyncSession, user_id: str, task_id: uuid.UUID) -> TaskRow:
    row = await db.scalar(select(TaskRow).where(TaskRow.user_id == user_id, TaskRow.id == task_id))
    if row is None:
        raise HTTPException(404)
    return row


@app.get("/api/{user_id}/tasks", response_model=TaskPage)
async def list_tasks(
    user_id: Owner,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskPage:
    where = TaskRow.user_id == user_id
    total = await db.scalar(select(func.count()).select_from(TaskRow).where(where))
    rows = await db.scalars(
        select(TaskRow).where(where).order_by(TaskRow.created_at.desc(), TaskRow.id)
        .limit(limit).offset(offset)
    )  # fmt: skip
    items = [TaskOut.model_validate(row) for row in rows]
    return TaskPage(items=items, total=total or 0, limit=limit, offset=offset)


@app.post("/api/{user_id}/tasks", response_model=TaskOut, status_code=201)
async def create_task(user_id: Owner, body: TaskIn, db: Db, response: Response) -> TaskRow:
    row = TaskRow(user_id=user_id, **body.model_dump())
    db.add(row)
    await db.flush()
    await db.refresh(row)
    response.headers["Location"] = f"/api/{user_id}/tasks/{row.id}"
    return row


@app.get("/api/{user_id}/tasks/{task_id}", response_model=TaskOut)
async def get_task(user_id: Owner, task_id: uuid.UUID, db: Db) -> TaskRow:
    return await owned(db, user_id, task_id)


@app.put("/api/{user_id}/tasks/{task_id}", response_model=TaskOut)
async def replace_task(user_id: Owner, task_id: uuid.UUID, body: TaskIn, db: Db) -> TaskRow:
    row = await owned(db, user_id, task_id)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    row.updated_at = func.now()
    await db.flush()
    await db.refresh(row)
    return row


@app.patch("/api/{user_id}/tasks/{task_id}/complete", response_model=TaskOut)
async def complete_task(
    user_id: Owner, task_id: uuid.UUID, db: Db, body: Completion | None = None
) -> TaskRow:
    row = await owned(db, user_id, task_id)
    row.completed = body.completed if body else not row.completed
    row.updated_at = func.now()
    await db.flush()
    await db.refresh(row)
    return row

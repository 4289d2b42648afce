"""REST handlers of an experiment's run history and sweeps (core/runs.py, core/sweeps.py):

GET  .../experiments/{e}/runs?sortBy=loss[.min|.max|.final]&descending=true
GET  .../experiments/{e}/runs/{job}/metrics?name=loss (repeatable; all when none)
GET  .../experiments/{e}/sweeps            POST (create, `name` in the body)
GET  .../experiments/{e}/sweeps/{s}        PUT (create), DELETE
POST .../experiments/{e}/sweeps/{s}/cancel
GET  .../experiments/{e}/sweeps/{s}/trials
"""

from __future__ import annotations

from tornado import web

from .handlers import API, NAME, BaseHandler


class RunsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment):
        descending = self.get_query_argument("descending", "false").lower() == "true"
        runs = await self.call(
            self.service.runs.runs, workspace, experiment, self.get_query_argument("sortBy", None), descending
        )
        self.reply_page(runs)


class RunMetricsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, job):
        names = self.get_query_arguments("name")
        self.reply(await self.call(self.service.runs.series, workspace, experiment, job, names))


class SweepsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment):
        self.reply_page(await self.call(self.service.sweeps.list_sweeps, workspace, experiment))

    @web.authenticated
    async def post(self, workspace, experiment):
        self.reply(await self.call(self.service.sweeps.create, workspace, experiment, self.body()), 201)


class SweepHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, sweep):
        self.reply(await self.call(self.service.sweeps.get, workspace, experiment, sweep))

    @web.authenticated
    async def put(self, workspace, experiment, sweep):
        cluster = self.get_query_argument("cluster", None)
        created = await self.call(self.service.sweeps.create, workspace, experiment, self.body(), sweep, cluster)
        self.reply(created, 201)

    @web.authenticated
    async def delete(self, workspace, experiment, sweep):
        await self.call(self.service.sweeps.delete, workspace, experiment, sweep)
        self.set_status(204)
        self.finish()


class SweepCancelHandler(BaseHandler):
    @web.authenticated
    async def post(self, workspace, experiment, sweep):
        self.reply(await self.call(self.service.sweeps.cancel, workspace, experiment, sweep))


class SweepTrialsHandler(BaseHandler):
    @web.authenticated
    async def get(self, workspace, experiment, sweep):
        self.reply_page(await self.call(self.service.sweeps.trials, workspace, experiment, sweep))


def routes() -> list[tuple[str, type]]:
    experiment = f"{API}/workspaces/{NAME}/experiments/{NAME}"
    sweep = f"{experiment}/sweeps/{NAME}"
    return [
        (f"{experiment}/runs", RunsHandler),
        (f"{experiment}/runs/{NAME}/metrics", RunMetricsHandler),
        (f"{experiment}/sweeps", SweepsHandler),
        (sweep, SweepHandler),
        (f"{sweep}/cancel", SweepCancelHandler),
        (f"{sweep}/trials", SweepTrialsHandler),
    ]

-- The SLA sweep on Supabase: pg_cron runs it every minute, with the daily rollup (which does
-- its work once per day however often it is asked). Where pg_cron cannot be had (a plain
-- PostgreSQL without the extension, or without it in shared_preload_libraries) this migration
-- does nothing: the service's sweep runner (SLA_SWEEP_INTERVAL_SECONDS) or
-- scripts/sla_sweep.py runs the sweep instead. Running both is harmless: sweeps take turns
-- and every write is once only.
--
-- The job runs as the role that applied the migration (postgres on Supabase), which is the
-- service path for private.is_service().
do $$
begin
  if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron') then
    raise notice 'pg_cron is not available: the SLA sweep is left to the service and scripts/sla_sweep.py';
    return;
  end if;
  begin
    create extension if not exists pg_cron;
  exception when others then
    raise notice 'pg_cron cannot be enabled here (%): the SLA sweep is left to the service', sqlerrm;
    return;
  end;
  -- Scheduling under an existing name replaces that job: re-applying changes nothing.
  execute $sql$
    select cron.schedule('rexera-sla-sweep', '* * * * *',
                         'select public.sla_sweep(); select public.sla_rollup_due();')
  $sql$;
end
$$;

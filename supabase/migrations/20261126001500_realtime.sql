-- Realtime: the tables people watch live are published to Supabase Realtime, which applies
-- each subscriber's RLS before delivering a change. (Our own /ws endpoint reads the
-- realtime_events stream instead; both see the same rows.)

do $$
declare
  v_table text;
begin
  foreach v_table in array array[
    'workflows', 'tasks', 'notifications', 'communications', 'documents', 'sla_alerts', 'realtime_events'
  ] loop
    if not exists (
      select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = v_table
    ) then
      execute format('alter publication supabase_realtime add table public.%I', v_table);
    end if;
  end loop;
end
$$;

-- Updates and deletes carry the whole old row, so Realtime can evaluate RLS filters on them.
alter table public.workflows replica identity full;
alter table public.tasks replica identity full;
alter table public.notifications replica identity full;

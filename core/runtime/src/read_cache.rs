//! A cache of the project reads every client repeats (the project list, one project, the active
//! one), kept by [`crate::ObservedRepository`] when every write to the store passes through it:
//! the embedded database, which only this process opens. Any write empties it.
//!
//! A read may race a write: it asks for a [`Ticket`] before querying and its answer is kept only
//! if no write started or finished meanwhile, so a stale answer is never stored.

use std::collections::HashMap;
use std::sync::Mutex;

use visprompt_domain::{Page, Paged, Project, ProjectId};

/// The most cached pages and projects; beyond that the cache starts over.
const MAX_ENTRIES: usize = 256;

#[derive(Default)]
struct State {
    /// Bumped when a write starts and when it ends.
    generation: u64,
    writes_in_flight: u32,
    lists: HashMap<(u64, u32), Paged<Project>>,
    projects: HashMap<ProjectId, Option<Project>>,
    active: Option<Option<Project>>,
}

impl State {
    fn clear(&mut self) {
        self.lists.clear();
        self.projects.clear();
        self.active = None;
    }
}

#[derive(Default)]
pub struct ReadCache {
    state: Mutex<State>,
}

/// Permission to store the answer of a read that started at `generation`.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    generation: u64,
    valid: bool,
}

/// Held for the duration of a write; the cache is emptied when it starts and when it ends.
pub struct WriteGuard<'a> {
    cache: &'a ReadCache,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.cache.lock();
        s.writes_in_flight -= 1;
        s.generation += 1;
        s.clear();
    }
}

impl ReadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> WriteGuard<'_> {
        let mut s = self.lock();
        s.writes_in_flight += 1;
        s.generation += 1;
        s.clear();
        WriteGuard { cache: self }
    }

    pub fn ticket(&self) -> Ticket {
        let s = self.lock();
        Ticket {
            generation: s.generation,
            valid: s.writes_in_flight == 0,
        }
    }

    fn store(&self, ticket: Ticket, put: impl FnOnce(&mut State)) {
        let mut s = self.lock();
        if ticket.valid && s.generation == ticket.generation && s.writes_in_flight == 0 {
            if s.lists.len() + s.projects.len() >= MAX_ENTRIES {
                s.clear();
            }
            put(&mut s);
        }
    }

    pub fn list(&self, page: Page) -> Option<Paged<Project>> {
        self.lock()
            .lists
            .get(&(page.offset(), page.limit()))
            .cloned()
    }

    pub fn store_list(&self, ticket: Ticket, page: Page, list: &Paged<Project>) {
        self.store(ticket, |s| {
            s.lists.insert((page.offset(), page.limit()), list.clone());
        });
    }

    pub fn project(&self, id: ProjectId) -> Option<Option<Project>> {
        self.lock().projects.get(&id).cloned()
    }

    pub fn store_project(&self, ticket: Ticket, id: ProjectId, project: &Option<Project>) {
        self.store(ticket, |s| {
            s.projects.insert(id, project.clone());
        });
    }

    pub fn active(&self) -> Option<Option<Project>> {
        self.lock().active.clone()
    }

    pub fn store_active(&self, ticket: Ticket, project: &Option<Project>) {
        self.store(ticket, |s| s.active = Some(project.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visprompt_domain::ProjectName;

    fn project(name: &str) -> Option<Project> {
        let now = chrono::Utc::now();
        Some(Project {
            id: ProjectId::new(),
            name: ProjectName::parse(name).unwrap(),
            active: false,
            created_at: now,
            updated_at: now,
        })
    }

    #[test]
    fn a_stored_read_is_served_until_a_write() {
        let cache = ReadCache::default();
        let id = ProjectId::new();
        let ticket = cache.ticket();
        cache.store_project(ticket, id, &project("a"));
        assert!(cache.project(id).is_some());
        drop(cache.write());
        assert!(cache.project(id).is_none());
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_stored() {
        let cache = ReadCache::default();
        let id = ProjectId::new();
        // Read starts, a write starts and ends, the read's (possibly old) answer arrives.
        let ticket = cache.ticket();
        drop(cache.write());
        cache.store_project(ticket, id, &project("old"));
        assert!(cache.project(id).is_none());
        // A read started while a write is in flight is not stored either.
        let write = cache.write();
        let ticket = cache.ticket();
        cache.store_project(ticket, id, &project("mid"));
        assert!(cache.project(id).is_none());
        drop(write);
        cache.store_project(ticket, id, &project("mid"));
        assert!(cache.project(id).is_none());
    }

    #[test]
    fn the_active_project_and_pages_are_cached_separately() {
        let cache = ReadCache::default();
        let t = cache.ticket();
        cache.store_active(t, &None);
        assert_eq!(cache.active(), Some(None));
        let page = Page::new(0, 10).unwrap();
        let list = Paged {
            items: vec![],
            total: 0,
            page,
        };
        cache.store_list(t, page, &list);
        assert!(cache.list(page).is_some());
        assert!(cache.list(Page::new(10, 10).unwrap()).is_none());
    }
}

//! The context handles an association's answers handed out, by what they stand for: a service
//! (SVCCTL ROpenServiceW) or a registry key (WINREG Open*, BaseRegOpenKey, BaseRegCreateKey),
//! so that later calls naming only the handle (RStartServiceW, BaseRegSaveKey) are named.

use std::collections::HashMap;

use dcwatch_parsers::dcerpc::stub::Handle;

use crate::flow::MemoryBudget;

/// Handles remembered per association. A remote registry dump opens a handful of keys; a
/// client walking the registry without closing its keys has the oldest-named one forgotten.
pub(super) const MAX_HANDLES: usize = 256;

/// Characters of a handle's name kept: a registry path is at most 255 characters per key, and
/// the paths dumps use are short.
pub(super) const MAX_HANDLE_NAME: usize = 512;

/// Budget charged per handle beyond its name: map entry, the handle, allocator.
const ENTRY_OVERHEAD: usize = 96;

#[derive(Debug)]
pub(super) struct Handles {
    names: HashMap<Handle, String>,
    budget: MemoryBudget,
    charged: usize,
}

impl Handles {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            names: HashMap::new(),
            budget,
            charged: 0,
        }
    }

    pub(super) fn name(&self, handle: &Handle) -> Option<&str> {
        self.names.get(handle).map(String::as_str)
    }

    /// Remembers what `handle` stands for; `false` when it could not be (the budget is spent),
    /// or when another handle was forgotten to make room.
    pub(super) fn remember(&mut self, handle: Handle, name: &str) -> bool {
        let name: String = name.chars().take(MAX_HANDLE_NAME).collect();
        let mut kept = true;
        if !self.names.contains_key(&handle)
            && self.names.len() >= MAX_HANDLES
            && let Some(forgotten) = self.names.keys().next().copied()
        {
            self.forget(&forgotten);
            kept = false;
        }
        self.forget(&handle);
        let charge = ENTRY_OVERHEAD + name.len();
        if !self.budget.try_reserve(charge) {
            return false;
        }
        self.charged += charge;
        self.names.insert(handle, name);
        kept
    }

    fn forget(&mut self, handle: &Handle) {
        if let Some(name) = self.names.remove(handle) {
            let charge = ENTRY_OVERHEAD + name.len();
            self.charged -= charge;
            self.budget.release(charge);
        }
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(n: usize) -> Handle {
        let mut handle = [0; 20];
        handle[..8].copy_from_slice(&(n as u64).to_le_bytes());
        handle
    }

    #[test]
    fn handles_are_bounded_and_give_their_charge_back() {
        let budget = MemoryBudget::new(1 << 20);
        {
            let mut handles = Handles::new(budget.clone());
            for n in 0..MAX_HANDLES {
                assert!(handles.remember(handle(n), "HKLM\\SAM"));
            }
            assert!(!handles.remember(handle(MAX_HANDLES), "HKLM\\SECURITY"));
            assert_eq!(handles.names.len(), MAX_HANDLES);
            assert_eq!(handles.name(&handle(MAX_HANDLES)), Some("HKLM\\SECURITY"));
            assert!(
                handles.remember(handle(MAX_HANDLES), "HKLM\\SYSTEM"),
                "renamed"
            );
            assert_eq!(handles.name(&handle(MAX_HANDLES)), Some("HKLM\\SYSTEM"));
        }
        assert_eq!(budget.in_use(), 0);
    }
}

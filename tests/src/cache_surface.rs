//! The scenario surface of every sync cache implementation: anything that is
//! a [`RawCache`] (the native `rtc_core::Cache`, the component's
//! `rtc_host::ComponentCache`) runs the table through this one surface.

use std::cell::Cell;

use rtc_core::{ComputeOptions, Lifetime, RawCache};

use crate::Surface;

/// Runs scenario steps through a [`RawCache`].
pub struct CacheSurface<T: RawCache>(pub T);

impl<T: RawCache> Surface for CacheSurface<T> {
    fn set(&self, key: &str, value: &[u8], tags: &[String]) -> Result<(), String> {
        RawCache::set_bytes(&self.0, key, value, tags, Lifetime::Default).map_err(|e| e.to_string())
    }

    fn get(&self, key: &str, tags: &[String]) -> Result<Option<Vec<u8>>, String> {
        RawCache::get_bytes(&self.0, key, tags).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str, tags: &[String]) -> Result<bool, String> {
        RawCache::delete(&self.0, key, tags).map_err(|e| e.to_string())
    }

    fn invalidate(&self, tags: &[String]) -> Result<(), String> {
        RawCache::invalidate(&self.0, tags).map_err(|e| e.to_string())
    }

    fn invalidate_all(&self) -> Result<(), String> {
        RawCache::invalidate_all(&self.0).map_err(|e| e.to_string())
    }

    fn get_or_compute(&self, key: &str, tags: &[String], computed: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let ran = Cell::new(false);
        let options = ComputeOptions::key(key).tags(tags).lock(true);
        let value = RawCache::get_or_compute_bytes(&self.0, &options, &mut || {
            ran.set(true);
            Ok(computed.to_vec())
        })
        .map_err(|e| e.to_string())?;
        Ok((value, ran.get()))
    }
}

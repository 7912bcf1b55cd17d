//! `rtc inspect` and `rtc tags`: what an operator needs to see, as text or JSON.

use rtc_core::{Cache, Inspection, TagState, Ttl};
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ttl_text(ttl: Ttl) -> String {
    match ttl {
        Ttl::Missing => "missing".into(),
        Ttl::Forever => "no expiry".into(),
        Ttl::Expires(d) => format!("expires in {:.1} s", d.as_secs_f64()),
    }
}

/// The TTL as JSON: milliseconds, -1 for no expiry, null for a missing key.
fn ttl_json(ttl: Ttl) -> Value {
    match ttl {
        Ttl::Missing => Value::Null,
        Ttl::Forever => json!(-1),
        Ttl::Expires(d) => json!(d.as_millis() as u64),
    }
}

fn tag_json(t: &TagState) -> Value {
    json!({
        "name": t.name,
        "key": t.key,
        "value_hex": t.value.as_deref().map(hex),
        "ttl_ms": ttl_json(t.ttl),
    })
}

fn tag_line(t: &TagState, width: usize) -> String {
    match &t.value {
        Some(v) => format!("  {:<width$}  {}  value {}  {}", t.name, t.key, hex(v), ttl_text(t.ttl)),
        None => format!("  {:<width$}  {}  does not exist (its first use creates it)", t.name, t.key),
    }
}

/// Prints `rtc inspect`; returns whether a read would hit.
pub fn inspect(cache: &Cache, key: &str, tags: &[String], json_out: bool) -> rtc_core::Result<bool> {
    let seen: Inspection = cache.inspect(key, tags)?;
    if json_out {
        let v = json!({
            "namespace": cache.config().namespace,
            "key": key,
            "tags": seen.tags.iter().map(tag_json).collect::<Vec<_>>(),
            "metadata_hash": seen.metadata_hash,
            "storage_key": seen.storage_key,
            "would_hit": seen.would_hit(),
            "value_size": seen.value_size,
            "entry_ttl_ms": ttl_json(seen.entry_ttl),
        });
        println!("{v}");
        return Ok(seen.would_hit());
    }
    println!("namespace   {}", cache.config().namespace);
    println!("key         {key}");
    match (&seen.storage_key, &seen.metadata_hash) {
        (Some(storage), Some(hash)) => {
            println!("storage     {storage}");
            println!("hash        {hash} (of the tag values below, in this order)");
        }
        _ => println!("storage     none yet: a tag does not exist, so nothing can be stored under these tags"),
    }
    match seen.value_size {
        Some(size) => println!("entry       {size} bytes, {}", ttl_text(seen.entry_ttl)),
        None => println!("entry       missing"),
    }
    println!("tags (hash order):");
    let width = seen.tags.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &seen.tags {
        println!("{}", tag_line(t, width));
    }
    println!("would hit   {}", if seen.would_hit() { "yes" } else { "no" });
    Ok(seen.would_hit())
}

/// Prints `rtc tags`.
pub fn tags(cache: &Cache, tags: &[String], json_out: bool) -> rtc_core::Result<()> {
    let states = cache.tags(tags)?;
    if json_out {
        println!("{}", Value::Array(states.iter().map(tag_json).collect()));
        return Ok(());
    }
    let width = states.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &states {
        println!("{}", tag_line(t, width));
    }
    Ok(())
}

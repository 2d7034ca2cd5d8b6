//! Generated reference data: the account's shops, the six status groups with realistic
//! statuses (two of them inactive), and its users (one inactive, one deleted).

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;

use crate::model::{Site, Status, StatusGroup, User};

/// Brands the accounts are named after: (code, name, domain).
const BRANDS: &[(&str, &str, &str)] = &[
    ("kuhnya-plus", "Кухня Плюс", "kuhnya-plus.ru"),
    ("domtech", "ДомТехника", "domtech.ru"),
    ("posuda-center", "Посуда Центр", "posuda-center.ru"),
];

/// The account's three shops: a retail shop, a wholesale (B2B) shop and a Kazakh shop.
pub fn sites(index: usize, currency: &str, rng: &mut StdRng, epoch: NaiveDateTime) -> Vec<Site> {
    let (code, name, domain) = BRANDS[index % BRANDS.len()];
    let variants = [
        ("", "", "RU", 'A', "wc-"),
        ("-opt", " Опт", "RU", 'B', "b2b-"),
        ("-kz", " Казахстан", "KZ", 'C', "kz-"),
    ];
    variants
        .iter()
        .enumerate()
        .map(|(i, (suffix, name_suffix, country, letter, prefix))| {
            let host = match *suffix {
                "" => domain.to_owned(),
                "-kz" => domain.replace(".ru", ".kz"),
                _ => format!("opt.{domain}"),
            };
            Site {
                id: 100 + i as u64,
                code: format!("{code}{suffix}"),
                name: format!("{name}{name_suffix}"),
                url: format!("https://{host}"),
                country_iso: (*country).to_owned(),
                currency: currency.to_owned(),
                ordering: i as u32 + 1,
                number_suffix: *letter,
                external_prefix: (*prefix).to_owned(),
                legal_name: format!("ООО «{name}»"),
                inn: format!("77{:08}", rng.random_range(0..100_000_000u32)),
                catalog_updated_at: epoch + Duration::minutes(rng.random_range(0..600)),
            }
        })
        .collect()
}

/// The six standard groups with the `ordering` and `process` of the real API.
pub fn groups() -> Vec<StatusGroup> {
    [
        ("new", "Новый", 10, false),
        ("approval", "Согласование", 20, true),
        ("assembling", "Комплектация", 30, true),
        ("delivery", "Доставка", 40, true),
        ("complete", "Выполнен", 50, false),
        ("cancel", "Отменен", 60, false),
    ]
    .into_iter()
    .map(|(code, name, ordering, process)| StatusGroup {
        code: code.to_owned(),
        name: name.to_owned(),
        ordering,
        process,
    })
    .collect()
}

/// Code of an inactive status of the `new` group that some old orders still carry.
pub const INACTIVE_NEW: &str = "dict-statuses-1571123798";
/// Code of an inactive (numeric-string) status of the `complete` group used by old orders.
pub const INACTIVE_COMPLETE: &str = "3";
/// Statuses a cancelled order can end in.
pub const CANCEL_CODES: &[&str] = &[
    "no-call",
    "no-product",
    "already-buyed",
    "delyvery-did-not-suit",
    "prices-did-not-suit",
    "cancel-other",
];

/// Statuses in all six groups, codes and names as in a stock RetailCRM account.
pub fn statuses() -> Vec<Status> {
    let rows: &[(&str, &str, bool, u32, &str)] = &[
        ("new", "Новый", true, 10, "new"),
        (INACTIVE_NEW, "Новый (старый)", false, 990, "new"),
        (
            "availability-confirmed",
            "Наличие подтверждено",
            true,
            10,
            "approval",
        ),
        ("offer-analog", "Предложить замену", true, 20, "approval"),
        (
            "client-confirmed",
            "Согласовано с клиентом",
            true,
            30,
            "approval",
        ),
        ("prepayed", "Предоплата поступила", true, 40, "approval"),
        (
            "send-to-assembling",
            "Передано в комплектацию",
            true,
            10,
            "assembling",
        ),
        ("assembling", "Комплектуется", true, 20, "assembling"),
        (
            "assembling-complete",
            "Укомплектован",
            true,
            30,
            "assembling",
        ),
        (
            "send-to-delivery",
            "Передан в доставку",
            true,
            10,
            "delivery",
        ),
        ("delivering", "Доставляется", true, 20, "delivery"),
        ("redirect", "Доставка перенесена", true, 30, "delivery"),
        ("delivered", "Доставлен", true, 40, "delivery"),
        ("complete", "Выполнен", true, 10, "complete"),
        (
            INACTIVE_COMPLETE,
            "Выполнен (архив)",
            false,
            990,
            "complete",
        ),
        ("no-call", "Недозвон", true, 10, "cancel"),
        ("no-product", "Нет в наличии", true, 20, "cancel"),
        ("already-buyed", "Купил в другом месте", true, 30, "cancel"),
        (
            "delyvery-did-not-suit",
            "Не устроила доставка",
            true,
            40,
            "cancel",
        ),
        (
            "prices-did-not-suit",
            "Не устроила цена",
            true,
            50,
            "cancel",
        ),
        ("cancel-other", "Отменен", true, 60, "cancel"),
    ];
    rows.iter()
        .map(|(code, name, active, ordering, group)| Status {
            code: (*code).to_owned(),
            name: (*name).to_owned(),
            active: *active,
            ordering: *ordering,
            group: (*group).to_owned(),
        })
        .collect()
}

/// The account's users: an administrator, four managers and one deactivated manager, plus
/// the id of a deleted user (returned separately: it exists only on old orders).
pub fn users(rng: &mut StdRng, epoch: NaiveDateTime, domain: &str) -> (Vec<User>, u64) {
    const MANAGERS: (u64, &str, &str) = (25, "Менеджеры", "manager");
    const DIRECTORS: (u64, &str, &str) = (26, "Руководители", "director");
    let people: &[(&str, &str, Option<&str>, &str, bool)] = &[
        (
            "Ирина",
            "Петрова",
            Some("Сергеевна"),
            "Руководитель отдела продаж",
            true,
        ),
        ("Дмитрий", "Орлов", None, "Менеджер", true),
        ("Елена", "Васильева", Some("Андреевна"), "Менеджер", true),
        ("Артём", "Белов", None, "Старший менеджер", true),
        ("Ксения", "Миронова", None, "Менеджер", true),
        ("Олег", "Фёдоров", Some("Игоревич"), "Менеджер", false),
    ];
    let first_id = rng.random_range(10..30u64);
    let users = people
        .iter()
        .enumerate()
        .map(|(i, (first, last, patronymic, position, active))| {
            let admin = i == 0;
            let login = format!("manager{}", i + 1);
            User {
                id: first_id + i as u64,
                created_at: epoch + Duration::days(i as i64 * 11),
                active: *active,
                email: format!("{login}@{domain}"),
                first_name: (*first).to_owned(),
                last_name: (*last).to_owned(),
                patronymic: patronymic.map(str::to_owned),
                position: Some((*position).to_owned()),
                phone: Some(format!("+7495{:07}", rng.random_range(0..10_000_000u32))),
                status: if *active {
                    ["free", "busy", "dinner"][i % 3]
                } else {
                    "free"
                },
                online: *active && rng.random_bool(0.6),
                is_admin: admin,
                is_manager: true,
                groups: if admin {
                    vec![MANAGERS, DIRECTORS]
                } else {
                    vec![MANAGERS]
                },
            }
        })
        .collect::<Vec<_>>();
    let deleted_id = first_id + people.len() as u64;
    (users, deleted_id)
}

/// Domain of the account's brand (for user emails).
pub fn brand_domain(index: usize) -> &'static str {
    BRANDS[index % BRANDS.len()].2
}

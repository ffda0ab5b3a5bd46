/**
 * The French civil calendar the territory runs on: Easter and the public holidays (the generated
 * GTFS feed switches to its Sunday service on them, the simulator's traffic follows them).
 */

/** Easter Sunday of `year` (the Gregorian computus of Meeus, Jones and Butcher), `YYYY-MM-DD`. */
export function easterSunday(year: number): string {
  const a = year % 19;
  const b = Math.floor(year / 100);
  const c = year % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

const plusDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);

/** France's public holidays of `year`, `YYYY-MM-DD`, in order (the eleven of the Code du travail; Alsace-Moselle's two excepted). */
export function frenchPublicHolidays(year: number): string[] {
  const sunday = easterSunday(year);
  const fixed = ['01-01', '05-01', '05-08', '07-14', '08-15', '11-01', '11-11', '12-25'].map((md) => `${year}-${md}`);
  return [...fixed, plusDays(sunday, 1), plusDays(sunday, 39), plusDays(sunday, 50)].sort();
}
